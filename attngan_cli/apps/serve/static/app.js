// attngan serve: the page. Plain JavaScript, no build step, nothing loaded from elsewhere.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], limits: {}, result: null, sample: 0 };

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const r = await fetch(path, opts);
  let data;
  try { data = await r.json(); } catch (e) { data = { error: `${r.status} ${r.statusText}` }; }
  if (!r.ok) throw new Error(data.error || `${r.status} ${r.statusText}`);
  return data;
}

function showError(msg) {
  const box = $("error");
  box.textContent = msg || "";
  box.hidden = !msg;
}

function currentModel() {
  return state.models.find((m) => m.name === $("model").value) || state.models[0];
}

function fmt(v) {
  if (v === null || v === undefined || v === "") return "-";
  if (typeof v === "number" && !Number.isInteger(v)) return v.toPrecision(4);
  return String(v);
}

function showFacts() {
  const m = currentModel();
  const dl = $("facts");
  dl.replaceChildren();
  if (!m) return;
  const attn = [m.word_attention && "words", m.sentence_attention && "sentence", m.memory && "memory"]
    .filter(Boolean).join(", ") || "none";
  const rows = [
    ["architecture", m.arch], ["paper", m.paper], ["dataset", m.dataset], ["step", m.step], ["epoch", m.epoch],
    ["vocabulary", `${m.vocab_size} words`], ["caption length", `${m.words} words (trained)`],
    ["image sizes", m.image_sizes.join(", ") + " px"], ["attention", attn],
    ["device", `${m.device}, ${m.precision}`], ["checkpoint", m.checkpoint],
  ];
  for (const rec of m.metrics || []) {
    for (const [k, v] of Object.entries(rec.metrics)) rows.push([k, `${fmt(v)} (step ${fmt(rec.step)})`]);
  }
  if (!(m.metrics || []).length) rows.push(["metrics", "none recorded (attngan eval)"]);
  for (const [k, v] of rows) dl.append(el("dt", { text: k }), el("dd", { text: fmt(v) }));
}

let tokTimer = null;
function scheduleTokens() {
  clearTimeout(tokTimer);
  tokTimer = setTimeout(showTokens, 200);
}

async function showTokens() {
  const box = $("tokens");
  const caption = $("caption").value;
  if (!caption.trim()) { box.replaceChildren(); return; }
  try {
    const data = await api("/tokenize", { caption, model: currentModel().name });
    box.replaceChildren(...data.tokens.map((t) => el("span", {
      class: "tok" + (t.known ? "" : " unknown"), text: t.word,
      title: t.known ? "in the model's vocabulary" : "not in the model's vocabulary: dropped",
    })));
  } catch (e) {
    box.replaceChildren(el("span", { class: "tok unknown", text: e.message }));
  }
}

async function generate(ev) {
  ev.preventDefault();
  showError("");
  const button = $("generate");
  button.disabled = true;
  $("status").textContent = "generating...";
  const t0 = performance.now();
  try {
    const body = {
      caption: $("caption").value, model: currentModel().name,
      seed: Number($("seed").value || 0), n: Number($("n").value || 1),
    };
    const data = await api("/generate", body);
    state.result = data;
    state.sample = 0;
    showResult();
    $("status").textContent = `${data.n} image(s) in ${((performance.now() - t0) / 1000).toFixed(2)} s`;
  } catch (e) {
    showError(e.message);
    $("status").textContent = "";
  } finally {
    button.disabled = false;
  }
}

function showResult() {
  const r = state.result;
  $("results").hidden = false;
  const warn = $("warnings");
  warn.textContent = (r.warnings || []).join("; ");
  warn.hidden = !(r.warnings || []).length;
  const images = $("images");
  images.replaceChildren();
  const show = Math.max(96, r.last_size);
  r.samples.forEach((s, i) => {
    const row = el("div", { class: "sample" + (i === state.sample ? " selected" : ""), "data-sample": i });
    for (const st of s.stages) {
      const side = Math.round(show * st.size / r.last_size);
      const img = el("img", { src: st.png, width: Math.max(side, 32), height: Math.max(side, 32),
                              alt: `sample ${i}, ${st.size} px`, title: st.name });
      const link = el("a", { href: st.png, download: st.name }, img);
      row.append(el("figure", {}, link, el("figcaption", { text: `${st.size} px` })));
    }
    if (r.samples.length > 1 && s.attention) {
      row.append(el("button", { class: "pick", type: "button", text: i === state.sample ? "shown below" : "its attention",
                                onclick: () => { state.sample = i; showResult(); } }));
    }
    images.append(row);
  });
  showAttention();
}

function showAttention() {
  const r = state.result;
  const s = r.samples[state.sample];
  const box = $("attention");
  box.replaceChildren();
  const words = s.attention || [];
  const sent = s.sentence_attention || [];
  const other = s.other || [];
  $("attention-title").hidden = !(words.length || sent.length || other.length);
  if (r.samples.length > 1 && (words.length || sent.length)) {
    box.append(el("div", { class: "label", text: `of sample ${state.sample + 1} (framed above)` }));
  }
  for (const a of words) {
    const map = el("img", { class: "map", alt: "attention map", width: Math.max(128, r.last_size) });
    const buttons = a.top.map((w) => el("button", {
      class: "word", type: "button", "data-word": w.word, "data-index": w.index,
      onclick: (ev) => {
        for (const b of ev.currentTarget.parentNode.querySelectorAll(".word")) b.classList.remove("active");
        ev.currentTarget.classList.add("active");
        map.src = a.maps[String(w.index)];
        map.alt = `attention of '${w.word}' at stage ${a.stage}`;
      },
    }, `${w.index}:${w.word}`, el("span", { class: "score", text: w.score.toFixed(2) })));
    const block = el("div", { class: "attn-model" },
      el("div", { class: "label", text: `${a.kind || "attention"} ${a.model} (stage ${a.stage}, ${a.regions.join("x")} regions)` }),
      el("div", { class: "words" }, ...buttons), map);
    box.append(block);
    if (buttons.length) buttons[0].click();
  }
  if (sent.length) {
    const cells = sent.map((m) => el("figure", {}, el("img", { src: m.map, width: Math.max(128, r.last_size),
      alt: `sentence attention, stage ${m.stage}` }),
      el("figcaption", { text: `stage ${m.stage}: peak ${(m.peak_share * 100).toFixed(1)}% of the sentence ` +
        `(uniform ${(m.uniform_share * 100).toFixed(2)}%)` })));
    box.append(el("div", { class: "attn-model" }, el("div", { class: "label", text: "sentence attention" }),
                  el("div", { class: "sample" }, ...cells)));
  }
  for (const o of other) {
    let text = `${o.name} ${o.model}: shape ${o.shape.join("x")}`;
    if (o.words) text += " - " + o.words.map((w) => `${w.word} ${w.weight.toFixed(2)}`).join(", ");
    box.append(el("div", { class: "attn-model" }, el("div", { class: "label", text })));
    if (o.map) box.append(el("img", { src: o.map, width: Math.max(128, r.last_size), alt: o.name }));
  }
  const figBox = $("figure-box");
  figBox.hidden = !s.figure;
  if (s.figure) {
    $("figure").src = s.figure;
    $("figure-download").href = s.figure;
    $("figure-download").download = `${r.filename_stem}-s${String(state.sample).padStart(2, "0")}-attention.png`;
  }
}

function downloadAll(ev) {
  ev.preventDefault();
  const r = state.result;
  if (!r) return;
  for (const s of r.samples) {
    for (const st of s.stages) {
      const a = el("a", { href: st.png, download: st.name });
      document.body.append(a);
      a.click();
      a.remove();
    }
  }
}

async function init() {
  $("form").addEventListener("submit", generate);
  $("caption").addEventListener("input", scheduleTokens);
  $("caption").addEventListener("keydown", (ev) => {
    if (ev.key === "Enter" && !ev.shiftKey) { ev.preventDefault(); $("form").requestSubmit(); }
  });
  $("model").addEventListener("change", () => { showFacts(); showTokens(); });
  $("download-all").addEventListener("click", downloadAll);
  try {
    const data = await api("/models");
    state.models = data.models;
    state.limits = data.limits;
    $("model").replaceChildren(...data.models.map((m) => el("option", { value: m.name, text: m.name })));
    $("n").max = data.limits.max_n;
    $("n").value = Math.min(4, data.limits.max_n);
    showFacts();
    document.body.dataset.ready = "1";
  } catch (e) {
    showError(`cannot read the models: ${e.message}`);
  }
}

init();
