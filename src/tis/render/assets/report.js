(function () {
  "use strict";
  // Every piece of data goes into the page through textContent, value or img.src (our own data: URLs):
  // model and dataset text is never parsed as markup.
  var data = JSON.parse(document.getElementById("tis-data").textContent);
  var samples = data.samples, runs = data.runs, kinds = data.kinds, images = data.images;
  var pageSize = data.pageSize || 50;
  var state = { page: 0, list: samples };

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function addOption(select, value, label) {
    var o = el("option", null, label);
    o.value = value;
    select.appendChild(o);
  }

  var fRun = $("f-run"), fBench = $("f-bench"), fCat = $("f-cat"), fVerdict = $("f-verdict"),
      fFlip = $("f-flip"), fDis = $("f-disagree"), fText = $("f-text");

  runs.forEach(function (r, i) { addOption(fRun, String(i), r.label + " (" + r.benchmarks.join(", ") + ")"); });
  var benches = [];
  samples.forEach(function (s) { if (benches.indexOf(s.b) < 0) { benches.push(s.b); } });
  benches.forEach(function (b) { addOption(fBench, b, b); });

  function refillCategories() {
    var keep = fCat.value, seen = {}, cats = [];
    samples.forEach(function (s) {
      if ((!fBench.value || s.b === fBench.value) && !seen[s.c]) { seen[s.c] = 1; cats.push(s.c); }
    });
    cats.sort();
    while (fCat.options.length > 1) { fCat.remove(1); }
    cats.forEach(function (c) { addOption(fCat, c, c || "(none)"); });
    fCat.value = seen[keep] ? keep : "";
  }

  function unparsed(s) {
    for (var i = 0; i < s.v.length; i++) {
      if (s.v[i][3] === "unparsed" || s.v[i][3] === "failed") { return true; }
    }
    return false;
  }

  function matches(s) {
    if (fRun.value !== "" && String(s.r) !== fRun.value) { return false; }
    if (fBench.value && s.b !== fBench.value) { return false; }
    if (fCat.value && s.c !== fCat.value) { return false; }
    if (fDis.checked && !s.d) { return false; }
    var f = fFlip.value;
    if (f === "flipped" && !s.x.length) { return false; }
    if ((f === "worse" || f === "better") && s.x.indexOf(f) < 0) { return false; }
    switch (fVerdict.value) {
      case "answer-bad": if (s.ga !== 0) { return false; } break;
      case "answer-good": if (s.ga !== 1) { return false; } break;
      case "thought-bad": if (s.gt !== 0) { return false; } break;
      case "self-correction": if (!(s.gt === 0 && s.ga === 1)) { return false; } break;
      case "collapse": if (!(s.gt === 0 && s.ga === 0)) { return false; } break;
      case "unparsed": if (!unparsed(s)) { return false; } break;
      case "failed": if (s.s === "ok") { return false; } break;
      case "truncated": if (!s.tr) { return false; } break;
    }
    var q = fText.value.trim().toLowerCase();
    if (q) {
      var hay = [s.id, s.p, s.t, s.a];
      for (var i = 0; i < hay.length; i++) {
        if (String(hay[i]).toLowerCase().indexOf(q) >= 0) { return true; }
      }
      return false;
    }
    return true;
  }

  function badge(parent, part, flag, kind) {
    if (flag === null || flag === undefined) { return; }
    parent.appendChild(el("span", "badge " + (flag ? "good" : "bad"), part + ": " + (flag ? kind.good : kind.bad)));
  }

  function block(parent, title, text, open) {
    var d = el("details");
    if (open) { d.open = true; }
    d.appendChild(el("summary", null, title));
    d.appendChild(el("pre", null, text));
    parent.appendChild(d);
  }

  function card(s) {
    var kind = kinds[s.b] || { good: "safe", bad: "unsafe" };
    var c = el("article", "sample");
    var head = el("header");
    head.appendChild(el("span", "run", runs[s.r].label));
    head.appendChild(el("span", null, s.b + (s.c ? " / " + s.c : "")));
    head.appendChild(el("span", "sid", s.id + " #" + s.i));
    badge(head, "answer", s.ga, kind);
    badge(head, "thought", s.gt, kind);
    if (s.s !== "ok") { head.appendChild(el("span", "badge bad", "generation failed")); }
    if (s.tr) { head.appendChild(el("span", "badge warn", "truncated")); }
    if (s.d) { head.appendChild(el("span", "badge warn", "judges disagree")); }
    s.x.forEach(function (f) { head.appendChild(el("span", "badge " + (f === "worse" ? "bad" : "good"), "flip: " + f)); });
    c.appendChild(head);
    if (s.im.length) {
      var row = el("div", "thumbs");
      s.im.forEach(function (im) {
        var url = images[im[0]];
        if (url) {
          var img = el("img");
          img.src = url;
          img.alt = im[1];
          img.title = im[1];
          img.loading = "lazy";
          row.appendChild(img);
        } else {
          row.appendChild(el("span", "noimg", "image: " + im[1]));
        }
      });
      c.appendChild(row);
    }
    c.appendChild(el("div", "label", "prompt"));
    c.appendChild(el("pre", "prompt", s.p));
    if (s.e) { c.appendChild(el("div", "label", "error")); c.appendChild(el("pre", "error", s.e)); }
    block(c, s.t ? "thought (" + s.n + " tokens" + (s.sp ? ", split: " + s.sp : "") + ")" : "thought (empty)", s.t, false);
    if (s.fs) {  // where the thought turns unsafe: [step, of steps, position, recovers, text]
      c.appendChild(el("div", "label", "first unsafe step " + s.fs[0] + " of " + s.fs[1] + ", at " +
        Math.round(100 * s.fs[2]) + "% of the thought" + (s.fs[3] ? ", recovers later" : ", does not recover")));
      c.appendChild(el("pre", "thought", s.fs[4]));
    }
    block(c, "answer", s.a, true);
    if (s.v.length) {
      var t = el("table", "verdicts"), hr = el("tr");
      ["judge", "target", "label", "status", "safe", "score", "rationale"].forEach(function (h) { hr.appendChild(el("th", null, h)); });
      var thead = el("thead");
      thead.appendChild(hr);
      t.appendChild(thead);
      var tb = el("tbody");
      s.v.forEach(function (v) {
        var tr = el("tr");
        v.forEach(function (x) { tr.appendChild(el("td", null, x === null || x === undefined ? "" : x)); });
        tb.appendChild(tr);
      });
      t.appendChild(tb);
      c.appendChild(t);
    }
    return c;
  }

  function render() {
    var pages = Math.max(1, Math.ceil(state.list.length / pageSize));
    if (state.page >= pages) { state.page = pages - 1; }
    if (state.page < 0) { state.page = 0; }
    var list = $("sample-list");
    list.textContent = "";
    var start = state.page * pageSize, frag = document.createDocumentFragment();
    state.list.slice(start, start + pageSize).forEach(function (s) { frag.appendChild(card(s)); });
    list.appendChild(frag);
    var info = state.list.length
      ? "page " + (state.page + 1) + " of " + pages + " · samples " + (start + 1) + "–" +
        Math.min(start + pageSize, state.list.length) + " of " + state.list.length + " shown (" + samples.length + " in all)"
      : "no sample matches (" + samples.length + " in all)";
    ["page-info", "page-info2"].forEach(function (id) { $(id).textContent = info; });
    ["p-prev", "p-prev2"].forEach(function (id) { $(id).disabled = state.page === 0; });
    ["p-next", "p-next2"].forEach(function (id) { $(id).disabled = state.page >= pages - 1; });
  }

  function apply() {
    state.list = samples.filter(matches);
    state.page = 0;
    render();
  }

  function go(delta, scroll) {
    state.page += delta;
    render();
    if (scroll) { $("filters").scrollIntoView(); }
  }

  fBench.addEventListener("change", function () { refillCategories(); apply(); });
  [fRun, fCat, fVerdict, fFlip, fDis].forEach(function (e) { e.addEventListener("change", apply); });
  var timer = null;
  fText.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(apply, 200); });
  $("filters").addEventListener("submit", function (ev) { ev.preventDefault(); apply(); });
  $("p-prev").addEventListener("click", function () { go(-1, false); });
  $("p-next").addEventListener("click", function () { go(1, false); });
  $("p-prev2").addEventListener("click", function () { go(-1, true); });
  $("p-next2").addEventListener("click", function () { go(1, true); });
  refillCategories();
  apply();
})();
