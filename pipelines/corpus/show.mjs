// show.mjs CORPUS.jsonl [CHARS] — prints, for every source, the beginning of its first
// document and of one from the middle, to check by eye that the text looks right.
import fs from 'node:fs';
import { fail } from './lib.mjs';

const [inp, chars] = process.argv.slice(2);
if (!inp) fail('usage: show.mjs CORPUS.jsonl [CHARS]');
const n = Number(chars || 400);
const by = new Map();
for (const line of fs.readFileSync(inp, 'utf8').split('\n')) {
  if (!line) continue;
  const d = JSON.parse(line);
  if (!by.has(d.source)) by.set(d.source, []);
  by.get(d.source).push(d.text);
}
for (const [s, texts] of by) {
  for (const i of new Set([0, texts.length >> 1])) {
    console.log(`=== ${s} [${i + 1}/${texts.length}] ${Buffer.byteLength(texts[i])} bytes`);
    console.log(texts[i].slice(0, n) + (texts[i].length > n ? ' [...]' : ''));
  }
}
