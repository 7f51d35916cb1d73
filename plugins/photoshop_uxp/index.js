// IC-Portrait Bridge: a Photoshop UXP panel (manifest v5). Sends the active layer to IC-Portrait Studio's
// live bridge (`icportrait bridge serve`, loopback only) and adds the relit result as a new layer.
// The logic is plain functions taking the `photoshop` module as an argument, so the tests can run it in
// node against fakes of the Photoshop API and a real bridge.
"use strict";

const DEFAULT_URL = "http://127.0.0.1:47615";
const POLL_MS = 200;
const TIMEOUT_MS = 10 * 60 * 1000;
const PS_16BIT_MAX = 32768; // Photoshop's 16-bit samples run 0..32768

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isLoopbackUrl(url) {
  const m = /^https?:\/\/(\[::1\]|localhost|127(?:\.\d{1,3}){3})(:\d+)?(\/|$)/i.exec(url);
  return m !== null;
}

async function bridgeFetch(cfg, path, options) {
  if (!isLoopbackUrl(cfg.url)) {
    throw new Error("The bridge URL must be on this machine (127.0.0.1, localhost or [::1]).");
  }
  const opts = Object.assign({}, options || {});
  opts.headers = Object.assign({ Authorization: "Bearer " + cfg.token }, opts.headers || {});
  let resp;
  try {
    resp = await fetch(cfg.url.replace(/\/+$/, "") + path, opts);
  } catch (e) {
    throw new Error("IC-Portrait's bridge is not reachable at " + cfg.url + " (start it with: icportrait bridge serve).");
  }
  if (resp.status === 401) {
    throw new Error("The bridge refused the token: paste it again (icportrait bridge token --show).");
  }
  if (!resp.ok) {
    let detail = "";
    try {
      detail = (await resp.json()).error || "";
    } catch (e) {
      detail = resp.statusText;
    }
    throw new Error("Bridge error " + resp.status + ": " + detail);
  }
  return resp;
}

function layerDepth(ps, doc) {
  const bits = String(doc.bitsPerChannel);
  if (bits === "bitDepth16" || bits === "16") return 16;
  if (bits === "bitDepth8" || bits === "8") return 8;
  throw new Error("IC-Portrait relights 8- and 16-bit documents (this one is " + bits + ").");
}

async function readActiveLayer(ps) {
  const doc = ps.app.activeDocument;
  if (!doc) throw new Error("Open an image first.");
  const layer = doc.activeLayers && doc.activeLayers[0];
  if (!layer) throw new Error("Select the layer to relight.");
  const depth = layerDepth(ps, doc);
  const got = await ps.imaging.getPixels({
    documentID: doc.id, layerID: layer.id, componentSize: depth, applyAlpha: false, colorSpace: "RGB",
  });
  const img = got.imageData;
  try {
    const data = await img.getData({ chunky: true });
    const bounds = got.sourceBounds || { left: 0, top: 0 };
    return {
      doc, layer, depth, data, width: img.width, height: img.height, components: img.components,
      left: bounds.left, top: bounds.top,
    };
  } finally {
    img.dispose();
  }
}

async function submit(cfg, src) {
  const order = src.components === 4 ? "rgba" : "rgb";
  const raw = {
    width: src.width, height: src.height, order: order, bit_depth: src.depth,
    max_value: src.depth === 16 ? PS_16BIT_MAX : 0,
  };
  const bytes = new Uint8Array(src.data.buffer, src.data.byteOffset, src.data.byteLength);
  const resp = await bridgeFetch(cfg, "/v1/jobs", {
    method: "POST",
    headers: {
      "Content-Type": "application/octet-stream",
      "X-ICPortrait-Job": JSON.stringify({ preset: cfg.preset || "loop", raw: raw }),
    },
    body: bytes,
  });
  return (await resp.json()).id;
}

async function waitForJob(cfg, id, onProgress) {
  const deadline = Date.now() + TIMEOUT_MS;
  while (Date.now() < deadline) {
    const st = await (await bridgeFetch(cfg, "/v1/jobs/" + id)).json();
    if (onProgress) onProgress(st.progress || 0, st.stage || "");
    if (st.state !== "queued" && st.state !== "running") return st;
    await sleep(POLL_MS);
  }
  await bridgeFetch(cfg, "/v1/jobs/" + id, { method: "DELETE" });
  throw new Error("The relight did not finish within 10 minutes.");
}

async function fetchResult(cfg, id, depth) {
  const buf = await (await bridgeFetch(cfg, "/v1/jobs/" + id + "/result?format=raw")).arrayBuffer();
  return depth === 16 ? new Uint16Array(buf) : new Uint8Array(buf);
}

async function insertLayer(ps, src, pixels, name) {
  const doc = src.doc;
  let created = null;
  await ps.core.executeAsModal(async () => {
    created = doc.createPixelLayer ? await doc.createPixelLayer({ name: name }) : await doc.createLayer({ name: name });
    const img = await ps.imaging.createImageDataFromBuffer(pixels, {
      width: src.width, height: src.height, components: src.components, chunky: true,
      colorSpace: "RGB", colorProfile: "sRGB IEC61966-2.1",
    });
    try {
      await ps.imaging.putPixels({
        documentID: doc.id, layerID: created.id, imageData: img,
        targetBounds: { left: src.left, top: src.top }, replace: true,
      });
    } finally {
      img.dispose();
    }
  }, { commandName: "Relight with IC-Portrait" });
  return created;
}

// One round trip: active layer -> bridge -> new layer above it. Returns the new layer.
async function relightActiveLayer(ps, cfg, onProgress) {
  let src = null;
  await ps.core.executeAsModal(async () => {
    src = await readActiveLayer(ps);
  }, { commandName: "Read layer for IC-Portrait" });
  const id = await submit(cfg, src);
  const st = await waitForJob(cfg, id, onProgress);
  if (st.state !== "done") throw new Error("The relight " + st.state + (st.error ? ": " + st.error : "."));
  const pixels = await fetchResult(cfg, id, src.depth);
  return insertLayer(ps, src, pixels, "Relit (" + (cfg.preset || "loop") + ")");
}

function loadSettings(store) {
  return {
    url: store.getItem("icportrait.url") || DEFAULT_URL,
    token: store.getItem("icportrait.token") || "",
    preset: store.getItem("icportrait.preset") || "loop",
  };
}

function saveSettings(store, cfg) {
  store.setItem("icportrait.url", cfg.url);
  store.setItem("icportrait.token", cfg.token);
  store.setItem("icportrait.preset", cfg.preset);
}

function setupPanel(rootDocument, ps, store) {
  const $ = (id) => rootDocument.getElementById(id);
  const cfg = loadSettings(store);
  $("url").value = cfg.url;
  $("token").value = cfg.token;
  $("preset").value = cfg.preset;
  const status = (text) => { $("status").textContent = text; };
  $("relight").addEventListener("click", async () => {
    const current = { url: $("url").value || DEFAULT_URL, token: $("token").value.trim(), preset: $("preset").value || "loop" };
    saveSettings(store, current);
    status("Sending the layer…");
    try {
      await relightActiveLayer(ps, current, (p, stage) => status("Relighting… " + Math.round(p * 100) + "% " + stage));
      status("Done: the result is a new layer.");
    } catch (e) {
      status(e.message || String(e));
    }
  });
}

if (typeof module !== "undefined" && module.exports) {
  module.exports = { relightActiveLayer, readActiveLayer, submit, waitForJob, fetchResult, insertLayer, isLoopbackUrl, loadSettings };
}

(function init() {
  let uxp = null;
  try {
    uxp = require("uxp");
  } catch (e) {
    return; // not inside Photoshop (tests load this file in node)
  }
  if (!uxp || !uxp.entrypoints) return;
  let ready = false; // show() runs every time the panel opens: wire the UI once
  uxp.entrypoints.setup({
    panels: {
      icportraitPanel: {
        show() {
          if (ready) return;
          ready = true;
          setupPanel(document, require("photoshop"), localStorage);
        },
      },
    },
  });
})();
