"""Fine-tuning: model setup per method (lora, qlora, full), batching, the Trainer run, and exports."""
