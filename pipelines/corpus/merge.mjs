// merge.mjs OUT.jsonl PART.jsonl... — the converters' outputs -> the corpus.
// Every line is checked ({"text": non-empty string, "source": non-empty string}); documents
// are ordered by source (byte order of the names), and within a source in their original
// order, then written to OUT through a temporary file and a rename.
import fs from 'node:fs';
import { fail } from './lib.mjs';

const [out, ...parts] = process.argv.slice(2);
if (!out || parts.length === 0) fail('usage: merge.mjs OUT.jsonl PART.jsonl...');
const by = new Map(); // source -> lines
for (const p of parts) {
  const lines = fs.readFileSync(p, 'utf8').split('\n');
  if (lines.pop() !== '') fail(`${p}: last line is not terminated; delete it and run again`);
  lines.forEach((line, i) => {
    let d;
    try { d = JSON.parse(line); } catch (e) { fail(`${p}:${i + 1}: not JSON (${e.message})`); }
    if (typeof d.text !== 'string' || !d.text || typeof d.source !== 'string' || !d.source) {
      fail(`${p}:${i + 1}: expected {"text": "...", "source": "..."}`);
    }
    if (!by.has(d.source)) by.set(d.source, []);
    by.get(d.source).push(line + '\n');
  });
}
const sources = [...by.keys()].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
const tmp = `${out}.tmp.${process.pid}`;
const fd = fs.openSync(tmp, 'w');
let n = 0;
for (const s of sources) {
  const lines = by.get(s);
  for (let i = 0; i < lines.length; i += 1000) fs.writeSync(fd, lines.slice(i, i + 1000).join(''));
  n += lines.length;
}
fs.fsyncSync(fd);
fs.closeSync(fd);
fs.renameSync(tmp, out);
process.stderr.write(`merge.mjs: ${out}: ${n} documents from ${sources.length} sources\n`);
