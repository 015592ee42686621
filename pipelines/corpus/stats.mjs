// stats.mjs CORPUS.jsonl OUT.tsv — documents and bytes (UTF-8 bytes of "text") per source.
// OUT: a header line "source<TAB>documents<TAB>bytes", then one line per source in the
// order the sources first appear in the corpus (sorted, as merge.mjs writes it).
// The totals go to stderr.
import fs from 'node:fs';
import { fail } from './lib.mjs';

const [inp, out] = process.argv.slice(2);
if (!inp || !out) fail('usage: stats.mjs CORPUS.jsonl OUT.tsv');
const by = new Map();
let n = 0, bytes = 0;
for (const line of fs.readFileSync(inp, 'utf8').split('\n')) {
  if (!line) continue;
  const d = JSON.parse(line);
  const s = by.get(d.source) || [0, 0];
  const b = Buffer.byteLength(d.text, 'utf8');
  s[0] += 1; s[1] += b; n += 1; bytes += b;
  by.set(d.source, s);
}
const tmp = `${out}.tmp.${process.pid}`;
fs.writeFileSync(tmp, 'source\tdocuments\tbytes\n' + [...by].map(([k, [c, b]]) => `${k}\t${c}\t${b}\n`).join(''));
fs.renameSync(tmp, out);
process.stderr.write(`stats.mjs: ${inp}: ${n} documents, ${bytes} bytes of text, ${by.size} sources\n`);
