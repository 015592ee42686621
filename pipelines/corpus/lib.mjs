// lib.mjs — helpers shared by the corpus converters (plain Node.js, built-in modules only):
//   readTgz(file)            the regular files of an npm tarball, read without extracting it
//   need(files, name, file)  one of them, or a clear failure naming the tarball and the path
//   decodeText(buf)          UTF-8 when the bytes are valid UTF-8, else ISO-8859-1 (byte b -> U+00b)
//   writeJsonl(out, docs)    {text, source} objects as JSON lines, written to a temp name and renamed
//   fail(msg)                one line on stderr, exit status 1
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';

const prog = path.basename(process.argv[1] || 'corpus');

export function fail(msg) {
  process.stderr.write(`${prog}: ${msg}\n`);
  process.exit(1);
}

// pax extended header ("<len> <key>=<value>\n" records) -> {key: value}
function parsePax(b) {
  const r = {};
  for (let i = 0; i < b.length;) {
    const sp = b.indexOf(0x20, i);
    const len = parseInt(b.toString('latin1', i, sp), 10);
    if (!(len > 0)) break;
    const rec = b.toString('utf8', sp + 1, i + len - 1);
    const eq = rec.indexOf('=');
    r[rec.slice(0, eq)] = rec.slice(eq + 1);
    i += len;
  }
  return r;
}

// Map from path inside the package (first component, "package/", dropped) to its bytes.
// Understands ustar (prefix field), pax 'x' headers and GNU 'L' long names, which covers
// what `npm pack` produces. gzip's CRC catches a corrupted or truncated download.
export function readTgz(file) {
  let buf;
  try {
    buf = zlib.gunzipSync(fs.readFileSync(file));
  } catch (e) {
    fail(`${file}: not a readable gzip tarball (${e.message}); delete it and run again`);
  }
  const str = (o, n) => {
    const s = buf.toString('utf8', o, o + n);
    const z = s.indexOf('\0');
    return z < 0 ? s : s.slice(0, z);
  };
  const files = new Map();
  let off = 0, pax = {}, longName = null;
  while (off + 512 <= buf.length) {
    if (buf.subarray(off, off + 512).every((b) => b === 0)) break; // end-of-archive block
    const size = parseInt(str(off + 124, 12).trim() || '0', 8);
    const type = str(off + 156, 1) || '0';
    const prefix = str(off + 257, 5) === 'ustar' ? str(off + 345, 155) : '';
    let name = (prefix ? prefix + '/' : '') + str(off, 100);
    const data = buf.subarray(off + 512, off + 512 + size);
    if (Number.isNaN(size) || data.length < size) fail(`${file}: truncated or corrupt tar entry '${name}'`);
    off += 512 + Math.ceil(size / 512) * 512;
    if (type === 'x') { pax = parsePax(data); continue; }
    if (type === 'g') continue;
    if (type === 'L') { longName = data.toString('utf8').replace(/\0[\s\S]*$/, ''); continue; }
    name = pax.path || longName || name;
    pax = {}; longName = null;
    if (type === '0' || type === '7') files.set(name.replace(/^[^/]*\//, ''), data);
  }
  if (files.size === 0) fail(`${file}: tarball holds no files`);
  return files;
}

export function need(files, name, file) {
  const b = files.get(name);
  if (!b) fail(`${file}: no '${name}' in the package; has its layout changed?`);
  return b;
}

// Strict UTF-8 check without ICU: decoding replaces bad sequences with U+FFFD, so the
// bytes are valid exactly when re-encoding gives them back.
export function decodeText(buf) {
  const s = buf.toString('utf8');
  if (Buffer.byteLength(s, 'utf8') === buf.length && Buffer.from(s, 'utf8').equals(buf)) return { text: s, latin1: false };
  return { text: buf.toString('latin1'), latin1: true };
}

export function writeJsonl(out, docs) {
  const tmp = `${out}.tmp.${process.pid}`;
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const fd = fs.openSync(tmp, 'w');
  let chunk = [];
  const flush = () => { fs.writeSync(fd, chunk.join('')); chunk = []; };
  for (const d of docs) {
    if (typeof d.text !== 'string' || d.text.length === 0) fail(`${out}: empty document from source '${d.source}'`);
    chunk.push(JSON.stringify({ text: d.text, source: d.source }) + '\n');
    if (chunk.length >= 1000) flush();
  }
  flush();
  fs.fsyncSync(fd);
  fs.closeSync(fd);
  fs.renameSync(tmp, out);
}

// "<n> docs, <bytes> bytes" per source, on stderr, for the converters' last line.
export function summary(out, docs) {
  const by = new Map();
  for (const d of docs) {
    const s = by.get(d.source) || [0, 0];
    s[0] += 1; s[1] += Buffer.byteLength(d.text, 'utf8');
    by.set(d.source, s);
  }
  const parts = [...by].map(([k, [n, b]]) => `${k} ${n} docs ${b} bytes`);
  process.stderr.write(`${prog}: ${out}: ${parts.join(', ')}\n`);
}
