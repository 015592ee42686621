// nlp-corpus.mjs IN.tgz OUT.jsonl [CHUNK_BYTES] — nlp-corpus -> JSON lines, source "nlp-corpus".
// The package is 100 files builds/doc-<n>.json, each a JSON array of 1,000 sentences drawn at
// random from many sources (SMS, lyrics, reddit, UN text, Friends transcripts, jeopardy, ...);
// the sources are not labelled and a sentence is 88 characters on average, too short to be a
// training example on its own. So the sentences, in file order (n = 0..99) then array order,
// are joined with "\n" into documents of at least CHUNK_BYTES UTF-8 bytes (default 2048;
// the last one may be shorter).
import { readTgz, need, writeJsonl, summary, fail } from './lib.mjs';

const [inp, out, chunkArg] = process.argv.slice(2);
if (!inp || !out) fail('usage: nlp-corpus.mjs IN.tgz OUT.jsonl [CHUNK_BYTES]');
const chunk = Number(chunkArg || 2048);
if (!(chunk > 0)) fail(`bad CHUNK_BYTES '${chunkArg}'`);
const files = readTgz(inp);
const n = [...files.keys()].filter((f) => /^builds\/doc-\d+\.json$/.test(f)).length;
if (n === 0) fail(`${inp}: no builds/doc-<n>.json in the package; has its layout changed?`);
const docs = [];
let cur = [], bytes = 0;
for (let i = 0; i < n; i++) {
  const sents = JSON.parse(need(files, `builds/doc-${i}.json`, inp).toString('utf8'));
  if (!Array.isArray(sents)) fail(`${inp}: builds/doc-${i}.json is not an array of sentences`);
  for (const s of sents) {
    if (typeof s !== 'string' || !s.trim()) continue;
    cur.push(s);
    bytes += Buffer.byteLength(s, 'utf8') + 1;
    if (bytes >= chunk) { docs.push({ text: cur.join('\n'), source: 'nlp-corpus' }); cur = []; bytes = 0; }
  }
}
if (cur.length) docs.push({ text: cur.join('\n'), source: 'nlp-corpus' });
writeJsonl(out, docs);
summary(out, docs);
