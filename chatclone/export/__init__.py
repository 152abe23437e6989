"""Export a clone for llama.cpp, Ollama and LM Studio: a GGUF file written in pure Python (`gguf_file`, `vocab`), an
Ollama Modelfile whose template renders exactly the training chat format (`chat_format`, checked by the Go-template
subset in `gotemplate`), and the export's README (`bundle`)."""
