"""The judging page: plain HTML and a little vanilla JavaScript (no build step), readable on a phone. It asks the
judge's name once (kept in the browser; a personal link carries it), shows the conversation and the two replies as
A and B, and sends the vote; the page never learns which reply is the clone's."""

PREFIX_MARK = "__JUDGING_PREFIX__"

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Which reply is real?</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 0; background: #f4f4f4; color: #222; line-height: 1.4; }
  main { max-width: 40rem; margin: 0 auto; padding: 1rem; }
  h1 { font-size: 1.3rem; } h2 { font-size: 1rem; color: #555; margin-bottom: .3rem; }
  .msg { margin: .2rem 0; padding: .4rem .6rem; background: #e8e8e8; border-radius: .4rem; white-space: pre-wrap;
         overflow-wrap: anywhere; }
  .reply { background: #fff; border: 1px solid #bbb; border-radius: .5rem; padding: .6rem .8rem; margin: .6rem 0;
           white-space: pre-wrap; overflow-wrap: anywhere; }
  .reply b { display: block; color: #555; }
  button { font-size: 1.05rem; padding: .8rem; width: 100%; margin: .3rem 0; border-radius: .5rem;
           border: 1px solid #777; background: #fff; cursor: pointer; }
  button:disabled { opacity: .5; }
  input { font-size: 1.05rem; padding: .6rem; width: 100%; box-sizing: border-box; margin: .3rem 0; }
  #error { color: #a00; font-weight: bold; } #progress, #who-line { color: #555; }
</style>
</head>
<body>
<main>
  <h1>Which reply is real?</h1>
  <section id="who" hidden>
    <form id="name-form">
      <label for="name">Your name (so that your votes are counted as yours)</label>
      <input id="name" maxlength="40" autocomplete="name" required>
      <button type="submit" id="start">Start</button>
    </form>
  </section>
  <section id="judging" hidden>
    <p id="progress"></p>
    <h2>The conversation</h2>
    <div id="context"></div>
    <p>The next message: one of these is what <b id="target"></b> really wrote, the other is the clone's.</p>
    <div class="reply"><b>A</b><span id="reply-a"></span></div>
    <div class="reply"><b>B</b><span id="reply-b"></span></div>
    <button id="vote-a" data-choice="a">A is the real one</button>
    <button id="vote-b" data-choice="b">B is the real one</button>
    <button id="vote-cant-tell" data-choice="cant_tell">Can't tell</button>
  </section>
  <section id="done" hidden><p id="done-text"></p></section>
  <p id="error" role="alert" hidden></p>
  <p id="who-line" hidden>Judging as <b id="judge-name"></b>. <a href="#" id="change">Not you?</a></p>
</main>
<script>
"use strict";
const PREFIX = "__JUDGING_PREFIX__";
const params = new URLSearchParams(location.search);
const token = params.get("token");
let judge = params.get("judge") || localStorage.getItem("chatclone-judge");
let current = null;
const $ = (id) => document.getElementById(id);
const buttons = () => document.querySelectorAll("#judging button");

function show(id) { for (const s of ["who", "judging", "done"]) $(s).hidden = s !== id; }
function fail(message) { $("error").textContent = message; $("error").hidden = false; }

async function api(path, options) {
  const response = await fetch(PREFIX + path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((body.error && body.error.message) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

async function next() {
  const q = new URLSearchParams({judge});
  if (token) q.set("token", token);
  const d = await api("/api/next?" + q.toString());
  $("progress").textContent = d.done + " of " + d.total + " judged";
  $("judge-name").textContent = d.judge;
  $("who-line").hidden = Boolean(token);
  if (!d.item) {
    $("done-text").textContent = "All " + d.total + " judged. Thank you, " + d.judge + "!";
    show("done");
    return;
  }
  current = d.item;
  $("target").textContent = d.target;
  const context = $("context");
  context.replaceChildren();
  for (const line of d.item.context.length ? d.item.context : ["(this reply opens the conversation)"]) {
    const p = document.createElement("p");
    p.className = "msg";
    p.textContent = line;
    context.append(p);
  }
  $("reply-a").textContent = d.item.a || "(empty reply)";
  $("reply-b").textContent = d.item.b || "(empty reply)";
  buttons().forEach((b) => { b.disabled = false; });
  show("judging");
}

async function vote(choice) {
  buttons().forEach((b) => { b.disabled = true; });
  $("error").hidden = true;
  try {
    await api("/api/vote", {method: "POST", headers: {"Content-Type": "application/json"},
                            body: JSON.stringify({judge, token, item: current.id, choice})});
  } catch (error) {
    if (error.status !== 409) {   // 409: voted on already (another tab): go on
      fail(error.message);
      buttons().forEach((b) => { b.disabled = false; });
      return;
    }
  }
  next().catch((error) => fail(error.message));
}

buttons().forEach((b) => b.addEventListener("click", () => vote(b.dataset.choice)));
$("name-form").addEventListener("submit", (event) => {
  event.preventDefault();
  judge = $("name").value.trim();
  if (!judge) return;
  localStorage.setItem("chatclone-judge", judge);
  next().catch((error) => fail(error.message));
});
$("change").addEventListener("click", (event) => {
  event.preventDefault();
  localStorage.removeItem("chatclone-judge");
  $("who-line").hidden = true;
  show("who");
});
if (judge) next().catch((error) => fail(error.message)); else show("who");
</script>
</body>
</html>
"""


def render(prefix: str) -> str:
    return PAGE.replace(PREFIX_MARK, prefix)
