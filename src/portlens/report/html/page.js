// portlens HTML report: decompresses its data (gzip) and Plotly (LZMA), both inlined, then
// draws the charts with Plotly and the tables and ladders with plain DOM and SVG. Nothing is
// fetched from the network.
'use strict';

const OUTCOME_COLORS = {
  completed: '#2ca02c', open: '#1f77b4', refused: '#d62728', unanswered: '#ff7f0e',
  reset: '#9467bd', half_open: '#8c564b', mid_stream: '#7f7f7f', one_way: '#17becf',
};
const SERIES_COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b',
  '#e377c2', '#bcbd22', '#17becf', '#7f7f7f'];
const PLOT_CONFIG = { displaylogo: false, responsive: true };
let D = null;  // the report's data (report/html/data.py)
let CONN = null;  // connection accessors over D.conns

// --- loading -------------------------------------------------------------------------------

// The inlined parts are gzip streams written 7 bits to a character (report/html pack7); the
// characters HTML would change (NUL, CR, '<') and DEL are escaped as DEL + '0'..'3'.
const ESCAPED = [0x00, 0x0D, 0x3C, 0x7F];
function unpack7(id) {
  const node = document.getElementById(id);
  const text = node.textContent;
  const out = new Uint8Array(Number(node.dataset.bytes));
  let acc = 0, bits = 0, j = 0;
  for (let i = 0; i < text.length && j < out.length; i++) {
    let v = text.charCodeAt(i);
    if (v === 0x7F) v = ESCAPED[text.charCodeAt(++i) - 0x30];
    acc = (acc << 7) | v;
    bits += 7;
    if (bits >= 8) {
      bits -= 8;
      out[j++] = (acc >> bits) & 0xFF;
      acc &= (1 << bits) - 1;
    }
  }
  return out;
}
function gunzipStream(id) {
  return new Response(new Blob([unpack7(id)]).stream().pipeThrough(new DecompressionStream('gzip')));
}
async function gunzip(id) { return await gunzipStream(id).text(); }
async function gunzipBytes(id) { return new Uint8Array(await gunzipStream(id).arrayBuffer()); }

// The connection columns (report/html/pack.py, which says why each step): value + 1 in the
// narrowest little-endian type, bytes shuffled, 0 is null; scaled by a gcd; the columns of
// KINDS as one code into their combinations; id.orig_p as a difference from the same
// client's previous port; IP bytes over payload bytes and 40 bytes a packet; uids made again
// from what they hash.
const TYPES = { u8: Uint8Array, u16: Uint16Array, u32: Uint32Array, f64: Float64Array };
function loadColumn(meta, bytes, n) {
  const Type = TYPES[meta.type];
  const w = Type.BYTES_PER_ELEMENT;
  const out = new Uint8Array(n * w);
  for (let b = 0; b < w; b++) {
    const base = meta.offset + b * n;
    for (let i = 0; i < n; i++) out[i * w + b] = bytes[base + i];
  }
  return new Type(out.buffer);
}
function unzigzag(v) { return v % 2 === 0 ? v / 2 : -(v + 1) / 2; }

function unpackColumns(header, bytes) {
  const n = header.n;
  const metas = header.cols;
  const cols = {};
  const plain = {};  // numbers with null as 0, for the columns made from them
  for (const [name, meta] of Object.entries(metas)) {
    if (name === 'kinds' || name === 'uid' || meta.codec) continue;
    if (meta.type === 'json') { cols[name] = meta.values; continue; }
    const values = loadColumn(meta, bytes, n);
    if (meta.dict) {
      const codes = new Int32Array(n);
      for (let i = 0; i < n; i++) codes[i] = values[i] - 1;
      cols[name] = { codes, dict: meta.dict };
      continue;
    }
    const scale = meta.scale || 1;
    const arr = new Array(n);
    const zero = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      arr[i] = values[i] === 0 ? null : (values[i] - 1) * scale;
      zero[i] = arr[i] === null ? 0 : arr[i];
    }
    cols[name] = arr;
    plain[name] = zero;
  }
  for (const [name, meta] of Object.entries(metas)) {
    if (meta.codec === 'delta') {
      const values = loadColumn(meta, bytes, n);
      const group = cols[meta.by].codes;
      const last = new Map();
      const arr = new Array(n);
      for (let i = 0; i < n; i++) {
        arr[i] = (last.get(group[i]) || 0) + unzigzag(values[i] - 1);
        last.set(group[i], arr[i]);
      }
      cols[name] = arr;
    } else if (meta.codec === 'over') {
      const values = loadColumn(meta, bytes, n);
      const b = plain[meta.bytes], p = plain[meta.pkts];
      const arr = new Array(n);
      for (let i = 0; i < n; i++) arr[i] = unzigzag(values[i] - 1) + b[i] + meta.per * p[i];
      cols[name] = arr;
    }
  }
  const kinds = metas.kinds;
  const codes = new Int32Array(n);
  const kindCodes = loadColumn(kinds, bytes, n);
  for (let i = 0; i < n; i++) codes[i] = kindCodes[i] - 1;
  kinds.group.forEach((name, j) => { cols[name] = { codes, dict: kinds.dict.map(t => t[j]) }; });
  const out = Object.assign({}, header, { cols });
  cols.uid = new UidColumn(metas.uid, bytes, out);
  return out;
}

// --- uids: the tracker's (track/tracker.py _uid): 'C' + the BLAKE2b-104 digest of Python's
// repr((serial, ts_ns, (l4, vlan, addr_a, port_a, addr_b, port_b))) in base 62, least
// significant digit first; (addr_a, port_a) is the lesser end, addresses in 16 bytes.

const B62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';
// Made when first asked for (a row drawn, a search, a sort by uid), then kept: making all
// 75,000 of the benchmark capture's took seconds of the page's opening.
class UidColumn {
  constructor(meta, bytes, conns) {
    const n = conns.n;
    this.cols = conns.cols;
    this.explicit = meta.explicit;
    this.offsets = loadColumn(meta.offset_col, bytes, n);
    this.base = BigInt(conns.base_ns);
    const ts = conns.cols.ts_ns;
    const order = Array.from({ length: n }, (_, i) => i);
    order.sort((a, b) => (ts[a] - ts[b]) || (a - b));
    this.rank = new Int32Array(n);
    order.forEach((i, r) => { this.rank[i] = r; });
    this.uids = new Array(n).fill(null);
    this.ends = new Map();  // address text -> [16 bytes, repr]
    this.buffer = new Uint8Array(256);
    this.encoder = new TextEncoder();
  }
  end(text) {
    let v = this.ends.get(text);
    if (v === undefined) { const b = addr16(text); v = [b, bytesRepr(b)]; this.ends.set(text, v); }
    return v;
  }
  value(i) {
    let uid = this.uids[i];
    if (uid !== null) return uid;
    uid = this.explicit[String(i)];
    if (uid === undefined) {
      const cols = this.cols;
      const get = name => { const c = cols[name]; const k = c.codes[i]; return k < 0 ? null : c.dict[k]; };
      const l4 = get('proto') === 'tcp' ? 6 : 17;
      let a = this.end(get('id.orig_h')), b = this.end(get('id.resp_h'));
      let pa = cols['id.orig_p'][i], pb = cols['id.resp_p'][i];
      if (compareEnds(a[0], pa, b[0], pb) > 0) [a, b, pa, pb] = [b, a, pb, pa];
      const serial = this.rank[i] + 1 + unzigzag(this.offsets[i] - 1);
      const ts = (this.base + BigInt(cols.ts_ns[i])).toString();
      const text = `(${serial}, ${ts}, (${l4}, None, ${a[1]}, ${pa}, ${b[1]}, ${pb}))`;
      if (text.length > this.buffer.length) this.buffer = new Uint8Array(2 * text.length);
      const { written } = this.encoder.encodeInto(text, this.buffer);
      uid = 'C' + base62(blake2b(this.buffer.subarray(0, written), 13));
    }
    this.uids[i] = uid;
    return uid;
  }
}
function compareEnds(a, pa, b, pb) {
  for (let k = 0; k < 16; k++) if (a[k] !== b[k]) return a[k] - b[k];
  return pa - pb;
}
// An address in the decoder's 16-byte form (IPv4 as ::ffff:a.b.c.d).
function addr16(text) {
  const out = new Uint8Array(16);
  if (!text.includes(':')) {
    out[10] = 0xFF; out[11] = 0xFF;
    text.split('.').forEach((p, k) => { out[12 + k] = Number(p); });
    return out;
  }
  let groups = [];
  const [head, tail] = text.includes('::') ? text.split('::') : [text, null];
  const words = s => {
    if (!s) return [];
    const parts = s.split(':');
    const w = [];
    for (const p of parts) {
      if (p.includes('.')) {
        const q = p.split('.').map(Number);
        w.push((q[0] << 8) | q[1], (q[2] << 8) | q[3]);
      } else w.push(parseInt(p, 16));
    }
    return w;
  };
  const h = words(head);
  if (tail === null) groups = h;
  else { const t = words(tail); groups = [...h, ...new Array(8 - h.length - t.length).fill(0), ...t]; }
  groups.forEach((g, k) => { out[2 * k] = g >> 8; out[2 * k + 1] = g & 0xFF; });
  return out;
}
// Python's repr() of a bytes object.
function bytesRepr(b) {
  const has = c => b.includes(c);
  const quote = has(0x27) && !has(0x22) ? '"' : "'";
  let s = 'b' + quote;
  for (const c of b) {
    if (c === 0x5C) s += '\\\\';
    else if (c === 0x09) s += '\\t';
    else if (c === 0x0A) s += '\\n';
    else if (c === 0x0D) s += '\\r';
    else if (c === quote.charCodeAt(0)) s += '\\' + quote;
    else if (c >= 32 && c <= 126) s += String.fromCharCode(c);
    else s += '\\x' + c.toString(16).padStart(2, '0');
  }
  return s + quote;
}
// The digest (big-endian) in base 62, least significant digit first, 17 digits; divided as
// five limbs of up to 24 bits (a limb and a remainder fit a double exactly).
function base62(d) {
  const limbs = [d[0], (d[1] << 16) | (d[2] << 8) | d[3], (d[4] << 16) | (d[5] << 8) | d[6],
    (d[7] << 16) | (d[8] << 8) | d[9], (d[10] << 16) | (d[11] << 8) | d[12]];
  let out = '';
  for (let k = 0; k < 17; k++) {
    let rem = 0;
    for (let j = 0; j < 5; j++) {
      const cur = rem * 16777216 + limbs[j];
      limbs[j] = Math.floor(cur / 62);
      rem = cur - limbs[j] * 62;
    }
    out += B62[rem];
  }
  return out;
}

// BLAKE2b (RFC 7693), unkeyed, 64-bit words as (low, high) pairs of 32-bit numbers.
const B2B_IV = new Uint32Array([
  0xF3BCC908, 0x6A09E667, 0x84CAA73B, 0xBB67AE85, 0xFE94F82B, 0x3C6EF372, 0x5F1D36F1, 0xA54FF53A,
  0xADE682D1, 0x510E527F, 0x2B3E6C1F, 0x9B05688C, 0xFB41BD6B, 0x1F83D9AB, 0x137E2179, 0x5BE0CD19]);
const B2B_SIGMA = [
  [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
  [14, 10, 4, 8, 9, 15, 13, 6, 1, 12, 0, 2, 11, 7, 5, 3],
  [11, 8, 12, 0, 5, 2, 15, 13, 10, 14, 3, 6, 7, 1, 9, 4],
  [7, 9, 3, 1, 13, 12, 11, 14, 2, 6, 5, 10, 4, 0, 15, 8],
  [9, 0, 5, 7, 2, 4, 10, 15, 14, 1, 11, 12, 6, 8, 3, 13],
  [2, 12, 6, 10, 0, 11, 8, 3, 4, 13, 7, 5, 15, 14, 1, 9],
  [12, 5, 1, 15, 14, 13, 4, 10, 0, 7, 6, 3, 9, 2, 8, 11],
  [13, 11, 7, 14, 12, 1, 3, 9, 5, 0, 15, 4, 8, 6, 2, 10],
  [6, 15, 14, 9, 11, 3, 0, 8, 12, 2, 13, 7, 1, 4, 10, 5],
  [10, 2, 8, 4, 7, 6, 1, 5, 15, 11, 9, 14, 3, 12, 13, 0]];
const B2B_V = new Uint32Array(32);
const B2B_M = new Uint32Array(32);
function b2bAdd(a, lo, hi) {  // V[a] += (lo, hi)
  const v = B2B_V;
  const l = v[a] + lo;
  v[a + 1] = v[a + 1] + hi + (l >= 0x100000000 ? 1 : 0);
  v[a] = l;
}
function b2bG(a, b, c, d, x, y) {
  const v = B2B_V, m = B2B_M;
  b2bAdd(a, v[b], v[b + 1]); b2bAdd(a, m[x], m[x + 1]);
  let lo = v[d] ^ v[a], hi = v[d + 1] ^ v[a + 1];
  v[d] = hi; v[d + 1] = lo;  // rotate right 32
  b2bAdd(c, v[d], v[d + 1]);
  lo = v[b] ^ v[c]; hi = v[b + 1] ^ v[c + 1];
  v[b] = (lo >>> 24) | (hi << 8); v[b + 1] = (hi >>> 24) | (lo << 8);
  b2bAdd(a, v[b], v[b + 1]); b2bAdd(a, m[y], m[y + 1]);
  lo = v[d] ^ v[a]; hi = v[d + 1] ^ v[a + 1];
  v[d] = (lo >>> 16) | (hi << 16); v[d + 1] = (hi >>> 16) | (lo << 16);
  b2bAdd(c, v[d], v[d + 1]);
  lo = v[b] ^ v[c]; hi = v[b + 1] ^ v[c + 1];
  v[b] = (hi >>> 31) | (lo << 1); v[b + 1] = (lo >>> 31) | (hi << 1);  // rotate right 63
}
function b2bCompress(h, block, t, last) {
  const v = B2B_V, m = B2B_M;
  for (let i = 0; i < 16; i++) { v[i] = h[i]; v[i + 16] = B2B_IV[i]; }
  v[24] ^= t;  // the byte counter fits in 32 bits here
  if (last) { v[28] = ~v[28]; v[29] = ~v[29]; }
  for (let i = 0; i < 32; i++) {
    m[i] = block[4 * i] | (block[4 * i + 1] << 8) | (block[4 * i + 2] << 16) | (block[4 * i + 3] << 24);
  }
  for (let r = 0; r < 12; r++) {
    const s = B2B_SIGMA[r % 10];
    b2bG(0, 8, 16, 24, 2 * s[0], 2 * s[1]);
    b2bG(2, 10, 18, 26, 2 * s[2], 2 * s[3]);
    b2bG(4, 12, 20, 28, 2 * s[4], 2 * s[5]);
    b2bG(6, 14, 22, 30, 2 * s[6], 2 * s[7]);
    b2bG(0, 10, 20, 30, 2 * s[8], 2 * s[9]);
    b2bG(2, 12, 22, 24, 2 * s[10], 2 * s[11]);
    b2bG(4, 14, 16, 26, 2 * s[12], 2 * s[13]);
    b2bG(6, 8, 18, 28, 2 * s[14], 2 * s[15]);
  }
  for (let i = 0; i < 16; i++) h[i] = h[i] ^ v[i] ^ v[i + 16];
}
const B2B_H = new Uint32Array(16);
const B2B_BLOCK = new Uint8Array(128);
function blake2b(input, outlen) {
  const h = B2B_H, block = B2B_BLOCK;
  h.set(B2B_IV);
  h[0] ^= 0x01010000 ^ outlen;
  let done = 0;
  while (input.length - done > 128) {
    block.set(input.subarray(done, done + 128));
    done += 128;
    b2bCompress(h, block, done, false);
  }
  block.fill(0);
  block.set(input.subarray(done));
  b2bCompress(h, block, input.length, true);
  const out = new Uint8Array(outlen);
  for (let i = 0; i < outlen; i++) out[i] = (h[i >> 2] >>> (8 * (i & 3))) & 0xFF;
  return out;
}

// LZMA ("lzma_alone": Python's lzma.FORMAT_ALONE), the decoder of the LZMA SDK's
// specification (LzmaSpec.cpp) as it stands: Plotly's bundle is a quarter smaller as LZMA
// than as gzip, and browsers decompress only gzip and deflate themselves.
function unlzma(input, size) {
  const props = input[0];
  const lc = props % 9, lp = Math.floor(props / 9) % 5, pb = Math.floor(props / 45);
  const out = new Uint8Array(size);
  let inPos = 13, range = 0xFFFFFFFF, code = 0;
  for (let i = 0; i < 5; i++) code = ((code << 8) | input[inPos++]) >>> 0;
  const probs = n => new Uint16Array(n).fill(1024);
  function bit(p, i) {
    const bound = (range >>> 11) * p[i];
    let b;
    if (code < bound) { p[i] += (2048 - p[i]) >>> 5; range = bound; b = 0; }
    else { p[i] -= p[i] >>> 5; code -= bound; range -= bound; b = 1; }
    if (range < 0x1000000) { range = (range * 256) >>> 0; code = ((code << 8) | input[inPos++]) >>> 0; }
    return b;
  }
  function direct(n) {
    let r = 0;
    for (let i = 0; i < n; i++) {
      range >>>= 1;
      let b = 0;
      if (code >= range) { code -= range; b = 1; }
      r = ((r << 1) | b) >>> 0;
      if (range < 0x1000000) { range = (range * 256) >>> 0; code = ((code << 8) | input[inPos++]) >>> 0; }
    }
    return r;
  }
  function tree(p, base, bits) {
    let m = 1;
    for (let i = 0; i < bits; i++) m = (m << 1) + bit(p, base + m);
    return m - (1 << bits);
  }
  function reverse(p, base, bits) {
    let m = 1, s = 0;
    for (let i = 0; i < bits; i++) { const b = bit(p, base + m); m = (m << 1) + b; s |= b << i; }
    return s;
  }
  const lenCoder = () => ({ choice: probs(2), low: probs(16 << 3), mid: probs(16 << 3), high: probs(256) });
  function length(c, posState) {
    if (!bit(c.choice, 0)) return tree(c.low, posState << 3, 3);
    if (!bit(c.choice, 1)) return 8 + tree(c.mid, posState << 3, 3);
    return 16 + tree(c.high, 0, 8);
  }
  const literal = probs(0x300 << (lc + lp));
  const isMatch = probs(12 << 4), isRep = probs(12), isRepG0 = probs(12), isRepG1 = probs(12),
    isRepG2 = probs(12), isRep0Long = probs(12 << 4);
  const posSlot = probs(4 << 6), posSpecial = probs(115), align = probs(16);
  const lenDec = lenCoder(), repLenDec = lenCoder();
  let state = 0, rep0 = 0, rep1 = 0, rep2 = 0, rep3 = 0, pos = 0;
  const pbMask = (1 << pb) - 1, lpMask = (1 << lp) - 1;
  while (pos < size) {
    const posState = pos & pbMask;
    if (!bit(isMatch, (state << 4) + posState)) {
      const prev = pos > 0 ? out[pos - 1] : 0;
      const base = 0x300 * (((pos & lpMask) << lc) + (prev >>> (8 - lc)));
      let s = 1;
      if (state >= 7) {
        let match = out[pos - rep0 - 1];
        do {
          const mb = (match >>> 7) & 1;
          match <<= 1;
          const b = bit(literal, base + ((1 + mb) << 8) + s);
          s = (s << 1) | b;
          if (mb !== b) break;
        } while (s < 0x100);
      }
      while (s < 0x100) s = (s << 1) | bit(literal, base + s);
      out[pos++] = s - 0x100;
      state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
      continue;
    }
    let len;
    if (bit(isRep, state)) {
      if (!bit(isRepG0, state)) {
        if (!bit(isRep0Long, (state << 4) + posState)) {
          state = state < 7 ? 9 : 11;
          out[pos] = out[pos - rep0 - 1];
          pos++;
          continue;
        }
      } else {
        let dist;
        if (!bit(isRepG1, state)) dist = rep1;
        else {
          if (!bit(isRepG2, state)) dist = rep2;
          else { dist = rep3; rep3 = rep2; }
          rep2 = rep1;
        }
        rep1 = rep0;
        rep0 = dist;
      }
      len = length(repLenDec, posState);
      state = state < 7 ? 8 : 11;
    } else {
      rep3 = rep2; rep2 = rep1; rep1 = rep0;
      len = length(lenDec, posState);
      state = state < 7 ? 7 : 10;
      const slot = tree(posSlot, (len < 4 ? len : 3) << 6, 6);
      if (slot < 4) rep0 = slot;
      else {
        const bits = (slot >>> 1) - 1;
        let dist = ((2 | (slot & 1)) << bits) >>> 0;
        if (slot < 14) dist += reverse(posSpecial, dist - slot, bits);
        else dist += ((direct(bits - 4) << 4) >>> 0) + reverse(align, 0, 4);
        rep0 = dist >>> 0;
      }
      if (rep0 === 0xFFFFFFFF) break;  // the end marker
    }
    len += 2;
    for (let i = 0; i < len && pos < size; i++, pos++) out[pos] = out[pos - rep0 - 1];
  }
  return out;
}

const TIMES = { start: performance.now() };  // milliseconds since navigation, per stage
window.PORTLENS_TIMES = TIMES;

async function main() {
  if (typeof DecompressionStream === 'undefined') {
    fail('This browser cannot decompress the report (it needs DecompressionStream: ' +
         'Chrome 80, Firefox 113, Safari 16.4 or later).');
    return;
  }
  const [data, conns] = await Promise.all([gunzip('data-gz'), gunzipBytes('conns-gz')]);
  const node = document.getElementById('plotly-lzma');
  TIMES.unpacked = performance.now();
  const plotly = new TextDecoder().decode(unlzma(unpack7('plotly-lzma'), Number(node.dataset.size)));
  TIMES.unlzma = performance.now();
  D = JSON.parse(data);
  D.conns = unpackColumns(D.conns, conns);
  TIMES.columns = performance.now();
  const script = document.createElement('script');
  script.textContent = plotly;
  document.head.appendChild(script);
  TIMES.plotly = performance.now();
  CONN = connections(D.conns);
  const steps = [summary, ports, handshakes, timeline, rates, talkers, scans, connTable];
  for (const step of steps) {
    step();
    TIMES[step.name] = performance.now();
  }
  document.getElementById('loading').remove();
  TIMES.ready = performance.now();
  document.body.dataset.ready = '1';
}

function fail(message) {
  const el = document.getElementById('loading');
  el.className = 'banner error';
  el.textContent = message;
}

// --- formatting (report/human.py's rules) ----------------------------------------------------

function fmtInt(n) { return n === null || n === undefined ? '-' : n.toLocaleString('en-US'); }
function fmtSize(n) {
  if (n === null || n === undefined) return '-';
  let v = n;
  for (const unit of ['B', 'kB', 'MB', 'GB', 'TB']) {
    if (v < 1000 || unit === 'TB') return unit === 'B' ? `${v.toFixed(0)} B` : `${v.toFixed(1)} ${unit}`;
    v /= 1000;
  }
  return `${n} B`;
}
const UNITS = [['µs', 1e3], ['ms', 1e6], ['s', 1e9], ['min', 60e9], ['h', 3600e9]];
function fmtDur(ns) {
  if (ns === null || ns === undefined) return '-';
  if (ns < 1000) return `${ns} ns`;
  for (let i = 0; i < UNITS.length; i++) {
    const [unit, scale] = UNITS[i];
    const v = ns / scale;
    if (v < 999.5 || i === UNITS.length - 1) {
      const digits = v >= 99.95 ? 0 : v >= 9.995 ? 1 : 2;
      return `${v.toFixed(digits)} ${unit}`;
    }
  }
  return `${ns} ns`;
}
function fmtPct(x) {
  if (x === null || x === undefined) return '-';
  return x === 0 ? '0' : x < 0.1 ? `${(100 * x).toPrecision(2)} %` : `${(100 * x).toFixed(0)} %`;
}
function word(o) { return o.replace('_', '-'); }
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === 'text') e.textContent = v; else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}
function endpoint(h, p) { return h.includes(':') ? `[${h}]:${p}` : `${h}:${p}`; }
function portLabel(r) {
  if (r.proto === 'icmp' || r.proto === 'icmp6') {
    return `${r.proto} ${r.icmp_type}` + (r.icmp_code === null ? '' : `/${r.icmp_code}`);
  }
  return `${r.port}/${r.proto}`;
}
function plot(id, traces, layout) {
  const base = { margin: { l: 60, r: 20, t: 10, b: 50 }, legend: { orientation: 'h', y: -0.2 },
    font: { size: 12 } };
  Plotly.newPlot(id, traces, Object.assign(base, layout || {}), PLOT_CONFIG);
}
function nothing(id, text) {
  const e = document.getElementById(id);
  e.classList.remove('chart');
  e.classList.add('note');
  e.textContent = text;
}

// --- tables: sorted, filtered and paged on the client ----------------------------------------

// columns: [{key, label, num, fmt(value,row), title}], get(row, key) -> raw value
function dataTable(container, { columns, rows, get, pageSize = 50, onClick, extraFilters,
                                 searchText, id, sortKey, sortDesc = true }) {
  const root = typeof container === 'string' ? document.getElementById(container) : container;
  root.replaceChildren();
  let order = rows.slice();
  let shown = order;
  let page = 0;
  let sort = sortKey ? { key: sortKey, desc: sortDesc } : null;
  const search = el('input', { type: 'search', placeholder: 'filter: words in any column' });
  const tools = el('div', { class: 'tbl-tools' }, search);
  const filters = (extraFilters || []).map(f => {
    const sel = el('select', { 'aria-label': f.label });
    sel.append(el('option', { value: '', text: `${f.label}: all` }));
    for (const v of f.values) sel.append(el('option', { value: v, text: v }));
    tools.append(sel);
    sel.addEventListener('change', apply);
    return { sel, test: f.test };
  });
  const count = el('span', { class: 'note' });
  const prev = el('button', { type: 'button', text: '‹ previous' });
  const next = el('button', { type: 'button', text: 'next ›' });
  const where = el('span', { class: 'note' });
  const size = el('select', { 'aria-label': 'rows per page' });
  for (const n of [25, 50, 100, 250]) {
    const o = el('option', { value: n, text: `${n} rows` });
    if (n === pageSize) o.selected = true;
    size.append(o);
  }
  const pager = el('span', { class: 'pager' }, prev, ' ', where, ' ', next, ' ', size);
  tools.append(count, pager);
  const table = el('table', { class: 'data', id });
  const head = el('tr');
  columns.forEach(c => {
    const th = el('th', { class: c.num ? 'num' : null, title: c.title || null, 'data-key': c.key });
    th.textContent = c.label;
    th.addEventListener('click', () => {
      sort = { key: c.key, desc: sort && sort.key === c.key ? !sort.desc : !!c.num };
      sortRows();
      page = 0;
      draw();
    });
    head.append(th);
  });
  const body = el('tbody');
  table.append(el('thead', {}, head), body);
  root.append(tools, el('div', { class: 'tbl-wrap' }, table));
  let texts = null;
  function rowText(r) {
    return columns.map(c => { const v = get(r, c.key); return c.fmt ? c.fmt(v, r) : v; })
      .join(' ').toLowerCase() + (searchText ? ' ' + searchText(r) : '');
  }
  function apply() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    if (words.length && texts === null) texts = new Map(order.map(r => [r, rowText(r)]));
    const active = filters.filter(f => f.sel.value);
    shown = order.filter(r => words.every(w => texts.get(r).includes(w)) &&
                              active.every(f => f.test(r, f.sel.value)));
    page = 0;
    draw();
  }
  function sortRows() {
    if (!sort) return;
    const dir = sort.desc ? -1 : 1;
    const key = sort.key;
    order.sort((a, b) => {
      const x = get(a, key), y = get(b, key);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
    apply();
  }
  function draw() {
    pageSize = Number(size.value);
    const pages = Math.max(1, Math.ceil(shown.length / pageSize));
    page = Math.min(page, pages - 1);
    const slice = shown.slice(page * pageSize, (page + 1) * pageSize);
    const trs = slice.map(r => {
      const tr = el('tr', { 'data-row': typeof r === 'number' ? r : null });
      for (const c of columns) {
        const v = get(r, c.key);
        const td = el('td', { class: c.num ? 'num' : null, 'data-key': c.key,
          'data-v': v === null || v === undefined ? '' : String(v) });
        const shownValue = c.fmt ? c.fmt(v, r) : (v === null || v === undefined ? '-' : v);
        if (shownValue instanceof Node) td.append(shownValue); else td.textContent = shownValue;
        tr.append(td);
      }
      if (onClick) {
        tr.classList.add('clickable');
        tr.addEventListener('click', () => {
          body.querySelectorAll('tr.selected').forEach(x => x.classList.remove('selected'));
          tr.classList.add('selected');
          onClick(r);
        });
      }
      return tr;
    });
    body.replaceChildren(...trs);
    head.querySelectorAll('th').forEach(th => {
      const c = columns.find(x => x.key === th.dataset.key);
      th.textContent = c.label + (sort && sort.key === c.key ? (sort.desc ? ' ▼' : ' ▲') : '');
    });
    count.textContent = shown.length === order.length ? `${fmtInt(order.length)} rows`
      : `${fmtInt(shown.length)} of ${fmtInt(order.length)} rows`;
    where.textContent = `page ${page + 1} of ${pages}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }
  prev.addEventListener('click', () => { page--; draw(); });
  next.addEventListener('click', () => { page++; draw(); });
  size.addEventListener('change', () => { page = 0; draw(); });
  let timer = null;
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(apply, 150); });
  if (sort) sortRows(); else draw();
  return { showRow(r) { const i = shown.indexOf(r); if (i >= 0) { page = Math.floor(i / pageSize); draw(); } } };
}

function recordTable(id, records, columns, opts) {
  return dataTable(id, Object.assign({ columns, rows: records, get: (r, k) => k.split('.').reduce((o, p) => (o === null || o === undefined ? o : o[p]), r) }, opts || {}));
}

// --- summary -------------------------------------------------------------------------------

function portRows() { return D.ports.filter(r => r.type === 'port'); }
function totals() { return D.ports.find(r => r.type === 'summary'); }

function summary() {
  const m = D.meta, s = D.stats, t = totals();
  document.getElementById('subtitle').textContent =
    `${m.sources.join(', ')} · ${m.first || '-'} to ${m.last || '-'} · portlens ${m.version}, ${m.generated}`;
  const cards = [
    ['packets', s.frames, fmtInt], ['bytes on the wire', s.wire_bytes, fmtSize],
    ['span', s.duration_ns, fmtDur], ['connections', t.total.conns, fmtInt],
    ['server ports', t.ports, fmtInt], ['hosts', D.hosts_total, fmtInt],
  ];
  const box = document.getElementById('summary-cards');
  for (const [k, v, f] of cards) {
    box.append(el('div', { class: 'card', 'data-key': k },
      el('div', { class: 'k', text: k }), el('div', { class: 'v', 'data-v': String(v), text: f(v) })));
  }
  const kv = document.getElementById('summary-details');
  const add = (k, v, raw) => kv.append(el('tr', {}, el('td', { text: k }),
    el('td', { 'data-key': k, 'data-v': raw === undefined ? null : String(raw), text: v })));
  add('first packet', m.first || '-');
  add('last packet', m.last || '-');
  add('captured bytes', fmtSize(s.captured_bytes), s.captured_bytes);
  add('protocols', Object.entries(s.protocols).map(([k, v]) => `${k} ${fmtInt(v)}`).join(', ') || '-');
  add('link types', Object.entries(s.linktypes).map(([k, v]) => `${k} ${fmtInt(v)}`).join(', ') || '-');
  const nc = Object.entries(t.not_counted);
  add('frames in no connection', nc.length ? nc.map(([k, v]) => `${k} ${fmtInt(v)}`).join(', ') : 'none');
  const mal = Object.entries(s.malformed);
  add('malformed frames', mal.length ? mal.map(([k, v]) => `${k} ${fmtInt(v)}`).join(', ') : 'none',
      mal.reduce((a, [, v]) => a + v, 0));
  const nd = Object.entries(s.not_decoded);
  add('not decoded (link type)', nd.length ? nd.map(([k, v]) => `${k}: ${fmtInt(v)}`).join(', ') : 'none');
  const notIp = Object.entries(s.not_ip);
  if (notIp.length) add('not IP', notIp.map(([k, v]) => `${k} ${fmtInt(v)}`).join(', '));
  if (Object.keys(s.tunnels).length) add('tunnelled', Object.entries(s.tunnels).map(([k, v]) => `${k} ${fmtInt(v)}`).join(', '));
  add('truncated (snaplen)', fmtInt(s.truncated), s.truncated);
  add('fragments', `${fmtInt(s.fragments)} (${fmtInt(s.reassembled_datagrams)} datagrams reassembled)`, s.fragments);
  add('bad checksums', `IP ${fmtInt(s.bad_ip_checksum)}, TCP/UDP/ICMP ${fmtInt(s.bad_l4_checksum)}`, s.bad_l4_checksum);
  add('capture loss (Zeek missed_bytes)', m.missed_bytes ?
      `${fmtSize(m.missed_bytes)} in ${fmtInt(m.conns_missed)} connections (bytes acknowledged but never seen)` : 'none seen', m.missed_bytes);
  if (m.live) {
    add('live capture', `${m.live.interface}: ${fmtInt(m.live.packets)} analysed, ${fmtInt(m.live.received)} received by filter, ` +
        `${fmtInt(m.live.dropped_by_kernel)} dropped by the kernel, ${fmtInt(m.live.dropped_by_portlens)} by portlens`);
  }
  const problems = document.getElementById('problems');
  for (const e of m.errors) problems.append(el('div', { class: 'banner error', text: e }));
  for (const w of m.warnings) problems.append(el('div', { class: 'banner', text: w }));
  // connections by protocol and outcome: the port rows summed per protocol
  const protos = [...new Set(portRows().map(r => r.proto))];
  const traces = m.outcomes.map(o => ({
    type: 'bar', name: word(o), marker: { color: OUTCOME_COLORS[o] }, x: protos,
    y: protos.map(p => portRows().filter(r => r.proto === p).reduce((a, r) => a + r[o], 0)),
  })).filter(tr => tr.y.some(v => v));
  if (!traces.length) return nothing('chart-outcomes', 'No connections.');
  plot('chart-outcomes', traces, { barmode: 'stack', yaxis: { title: 'connections' } });
}

// --- ports ---------------------------------------------------------------------------------

function ports() {
  const rows = portRows();
  if (!rows.length) {
    nothing('chart-ports', 'No ports.');
    nothing('chart-traffic', 'No ports.');
  } else {
    const top = rows.slice().sort((a, b) => b.conns - a.conns).slice(0, 20);
    const labels = top.map(portLabel);
    plot('chart-ports', D.meta.outcomes.map(o => ({
      type: 'bar', name: word(o), x: labels, y: top.map(r => r[o]), marker: { color: OUTCOME_COLORS[o] },
    })).filter(t => t.y.some(v => v)), { barmode: 'stack', yaxis: { title: 'connections' },
      xaxis: { type: 'category' } });
    const big = rows.slice().sort((a, b) => (b.bytes_c2s + b.bytes_s2c) - (a.bytes_c2s + a.bytes_s2c)).slice(0, 20);
    const bl = big.map(portLabel);
    plot('chart-traffic', [
      { type: 'bar', name: 'bytes client>server', x: bl, y: big.map(r => r.bytes_c2s),
        customdata: big.map(r => r.pkts_c2s), hovertemplate: '%{x}: %{y} bytes, %{customdata} packets c>s<extra></extra>' },
      { type: 'bar', name: 'bytes server>client', x: bl, y: big.map(r => r.bytes_s2c),
        customdata: big.map(r => r.pkts_s2c), hovertemplate: '%{x}: %{y} bytes, %{customdata} packets s>c<extra></extra>' },
    ], { barmode: 'group', yaxis: { title: 'payload bytes', type: 'log' }, xaxis: { type: 'category' } });
  }
  const outcomeCols = D.meta.outcomes.map(o => ({ key: o, label: word(o), num: true, fmt: fmtInt }));
  recordTable('table-ports', rows, [
    { key: 'port', label: 'port', fmt: (v, r) => portLabel(r) },
    { key: 'service', label: 'service', fmt: v => v || '-' },
    { key: 'class', label: 'IANA class', fmt: v => v || '-' },
    { key: 'conns', label: 'conns', num: true, fmt: fmtInt },
    ...outcomeCols,
    { key: 'pkts_c2s', label: 'pkts c>s', num: true, fmt: fmtInt },
    { key: 'pkts_s2c', label: 'pkts s>c', num: true, fmt: fmtInt },
    { key: 'bytes_c2s', label: 'bytes c>s', num: true, fmt: fmtSize },
    { key: 'bytes_s2c', label: 'bytes s>c', num: true, fmt: fmtSize },
    { key: 'clients', label: 'clients', num: true, fmt: fmtInt },
    { key: 'servers', label: 'servers', num: true, fmt: fmtInt },
    { key: 'rtt_p50_ns', label: 'rtt p50', num: true, fmt: fmtDur },
    { key: 'rtt_p95_ns', label: 'rtt p95', num: true, fmt: fmtDur },
    { key: 'retransmission_rate', label: 'retx', num: true, fmt: fmtPct },
  ], { id: 'ports-table', pageSize: 25 });
}

// --- handshakes ----------------------------------------------------------------------------

function handshakes() {
  const recs = D.handshakes;
  const ports = Object.keys(D.rtts);
  const traces = [];
  let sampled = false;
  for (const [side, color] of [['server', '#1f77b4'], ['client', '#ff7f0e']]) {
    const x = [], y = [];
    for (const p of ports) {
      const r = D.rtts[p];
      if (r[`${side}_count`] > r[side].length) sampled = true;
      for (const v of r[side]) { x.push(`${p}/tcp`); y.push(v / 1e6); }
    }
    if (y.length) traces.push({ type: 'box', name: `${side} RTT`, x, y, marker: { color }, boxpoints: false });
  }
  if (traces.length) {
    plot('chart-rtt', traces, { boxmode: 'group', yaxis: { title: 'ms', type: 'log' }, xaxis: { type: 'category' } });
    document.getElementById('rtt-note').textContent = sampled ?
      'Ports with more than 1,000 handshakes are drawn from 1,000 RTTs at evenly spaced ranks (min and max included); the table has the exact quantiles.' : '';
  } else {
    nothing('chart-rtt', 'No handshake completed with both halves seen.');
  }
  recordTable('table-handshakes', recs, [
    { key: 'port', label: 'port', fmt: v => `${v}/tcp` },
    { key: 'service', label: 'service', fmt: v => v || '-' },
    { key: 'handshakes', label: 'handshakes', num: true, fmt: fmtInt },
    { key: 'syns', label: 'SYNs', num: true, fmt: fmtInt },
    { key: 'syn_retransmits', label: 'SYN rexmit', num: true, fmt: fmtInt },
    { key: 'syn_acks', label: 'SYN-ACKs', num: true, fmt: fmtInt },
    { key: 'syn_ack_retransmits', label: 'SYN-ACK rexmit', num: true, fmt: fmtInt },
    { key: 'completed', label: 'completed', num: true, fmt: fmtInt },
    { key: 'refused', label: 'refused', num: true, fmt: fmtInt },
    { key: 'unanswered', label: 'unanswered', num: true, fmt: fmtInt },
    { key: 'half_open', label: 'half-open', num: true, fmt: fmtInt },
    { key: 'reset', label: 'reset', num: true, fmt: fmtInt },
    { key: 'server_rtt_p50_ns', label: 'server rtt p50', num: true, fmt: fmtDur },
    { key: 'server_rtt_p95_ns', label: 'p95', num: true, fmt: fmtDur },
    { key: 'server_rtt_max_ns', label: 'max', num: true, fmt: fmtDur },
    { key: 'client_rtt_p50_ns', label: 'client rtt p50', num: true, fmt: fmtDur },
    { key: 'client_rtt_p95_ns', label: 'p95', num: true, fmt: fmtDur },
    { key: 'client_rtt_max_ns', label: 'max', num: true, fmt: fmtDur },
  ], { id: 'handshakes-table', pageSize: 25, sortKey: 'handshakes' });
  const top = (obj, n = 3) => {
    const e = Object.entries(obj || {});
    const total = e.reduce((a, [, v]) => a + v, 0);
    return e.slice(0, n).map(([k, v]) => (e.length > 1 ? `${k || '(none)'} ${v}/${total}` : k || '(none)')).join(', ') + (e.length > n ? `, +${e.length - n} more` : '') || '-';
  };
  const opts = [];
  for (const r of recs) {
    for (const side of ['client', 'server']) {
      const o = r[`${side}_options`];
      if (o && o.offers) opts.push(Object.assign({ port: r.port, side }, o));
    }
  }
  recordTable('table-options', opts, [
    { key: 'port', label: 'port', fmt: v => `${v}/tcp` },
    { key: 'side', label: 'side' },
    { key: 'offers', label: 'offers', num: true, fmt: fmtInt },
    { key: 'fingerprints', label: 'fingerprints (p0f order)', fmt: v => top(v) },
    { key: 'mss', label: 'mss', fmt: v => top(v) },
    { key: 'wscale', label: 'wscale', fmt: v => top(v) },
    { key: 'sack_perm', label: 'sack', num: true, fmt: (v, r) => `${v}/${r.offers}` },
    { key: 'timestamps', label: 'ts', num: true, fmt: (v, r) => `${v}/${r.offers}` },
  ], { id: 'options-table', pageSize: 25 });
}

// --- connections: column accessors -----------------------------------------------------------

function connections(c) {
  const cols = c.cols;
  const base = BigInt(c.base_ns);
  const baseMs = Number(base / 1000000n) + Number(base % 1000000n) / 1e6;
  const get = (i, key) => {
    const col = cols[key];
    if (col === undefined) return undefined;
    if (Array.isArray(col)) return col[i];
    if (col instanceof UidColumn) return col.value(i);
    const code = col.codes[i];
    return code < 0 ? null : col.dict[code];
  };
  return { n: c.n, get, baseMs,
    tsNs: i => (base + BigInt(cols.ts_ns[i])).toString(),
    startMs: i => baseMs + cols.ts_ns[i] / 1e6,
    endMs: i => baseMs + (cols.ts_ns[i] + cols.duration_ns[i]) / 1e6 };
}

function isoUtc(ms, nsExtra) {
  const d = new Date(Math.floor(ms));
  const us = Math.floor((ms - Math.floor(ms)) * 1000 + 1e-6);
  const frac = String(d.getUTCMilliseconds() * 1000 + us).padStart(6, '0');
  return d.toISOString().slice(0, 19).replace('T', ' ') + '.' + frac;
}

function connCell(i, key) { return CONN.get(i, key); }

// --- timeline and rates --------------------------------------------------------------------

const TIMELINE_MAX = 5000;
// Lines drawn at most: SVG takes seconds past a few thousand, and a person cannot tell more
// apart on a screen; above it the timeline is an even sample by start (every k-th), which keeps
// the outcome mix and the shape over time, and says so (the rate charts count every one).

function timeline() {
  const n = CONN.n;
  if (!n) return nothing('chart-timeline', 'No connections.');
  const all = Array.from({ length: n }, (_, i) => i);
  all.sort((a, b) => D.conns.cols.ts_ns[a] - D.conns.cols.ts_ns[b]);
  const step = Math.max(1, Math.ceil(n / TIMELINE_MAX));
  const idx = step === 1 ? all : all.filter((_, r) => r % step === 0);
  let lo = Infinity, hi = -Infinity;
  for (const i of idx) { lo = Math.min(lo, CONN.startMs(i)); hi = Math.max(hi, CONN.endMs(i)); }
  const least = Math.max((hi - lo) / 2000, 0.001);
  const by = {};
  idx.forEach((i, rank) => {
    const o = CONN.get(i, 'outcome');
    const t = by[o] || (by[o] = { x: [], y: [], customdata: [], text: [] });
    const s = CONN.startMs(i);
    const label = `${CONN.get(i, 'uid')} ${CONN.get(i, 'proto')} ${endpoint(CONN.get(i, 'id.orig_h'), CONN.get(i, 'id.orig_p'))} → ` +
      `${endpoint(CONN.get(i, 'id.resp_h'), CONN.get(i, 'id.resp_p'))} ${CONN.get(i, 'conn_state')} ${fmtDur(CONN.get(i, 'duration_ns'))}`;
    t.x.push(s, Math.max(CONN.endMs(i), s + least), null);
    t.y.push(rank * step, rank * step, null);
    t.customdata.push(i, i, null);
    t.text.push(label, label, null);
  });
  const traces = D.meta.outcomes.filter(o => by[o]).map(o => Object.assign({
    type: 'scatter', mode: 'lines', name: word(o), line: { color: OUTCOME_COLORS[o], width: 2 },
    hoverinfo: 'text', connectgaps: false }, by[o]));
  plot('chart-timeline', traces, { xaxis: { type: 'date', title: 'time (UTC)' },
    yaxis: { title: 'connections, by start', autorange: 'reversed' }, hovermode: 'closest' });
  document.getElementById('chart-timeline').on('plotly_click', ev => {
    const p = ev.points && ev.points[0];
    if (p && p.customdata !== null && p.customdata !== undefined) showLadder(p.customdata, true);
  });
  document.getElementById('timeline-note').textContent =
    (step === 1 ? `${fmtInt(n)} connections` : `${fmtInt(idx.length)} of ${fmtInt(n)} connections: every ${step}th by start time`) +
    '; drag to zoom, double-click to zoom out. Connections shorter than 1/2000 of the span are drawn that long so that they can be seen.';
}

function rates() {
  const r = D.rates;
  document.querySelectorAll('.bin').forEach(e => { e.textContent = r.bin_s === 1 ? 'second' : `${r.bin_s} s`; });
  if (r.start_s === null || !r.all.length) {
    nothing('chart-rate-packets', 'No packets.');
    nothing('chart-rate-conns', 'No connections.');
    return;
  }
  const x = r.all.map((_, i) => (r.start_s + i * r.bin_s) * 1000);
  const names = Object.keys(r.ports);
  // Few bins read better as stacked bars; many as stacked areas (and draw faster).
  const bars = x.length <= 60;
  const area = (name, y, i) => (bars
    ? { type: 'bar', name, x, y, marker: { color: SERIES_COLORS[i % SERIES_COLORS.length] } }
    : { type: 'scatter', mode: 'lines', stackgroup: 'one', name, x, y,
        line: { width: 0.5, color: SERIES_COLORS[i % SERIES_COLORS.length] } });
  plot('chart-rate-packets', [...names.map((k, i) => area(k, r.ports[k], i)), area('other', r.other, names.length + 1)],
    { barmode: 'stack', xaxis: { type: 'date', title: 'time (UTC)' }, yaxis: { title: `packets per ${r.bin_s} s` } });
  const cn = Object.keys(r.new_conns);
  plot('chart-rate-conns', cn.map((k, i) => area(k, r.new_conns[k], k === 'other' ? names.length + 1 : i)),
    { barmode: 'stack', xaxis: { type: 'date', title: 'time (UTC)' }, yaxis: { title: `new connections per ${r.bin_s} s` } });
  document.getElementById('rate-note').textContent =
    `Bins of ${r.bin_s} s. A packet counts for a port when the port is on either side (tcpdump's "port N"); ` +
    `"other" is every packet with neither of these ports (ICMP and non-IP frames included). A connection counts for its server port.`;
}

// --- talkers and scans ---------------------------------------------------------------------

function talkers() {
  const hosts = D.hosts.slice(0, 15), convs = D.convs.slice(0, 15);
  if (hosts.length) {
    const y = hosts.map(h => h.addr);
    plot('chart-hosts', [
      { type: 'bar', orientation: 'h', name: 'bytes sent', y, x: hosts.map(h => h.tx_bytes) },
      { type: 'bar', orientation: 'h', name: 'bytes received', y, x: hosts.map(h => h.rx_bytes) },
    ], { barmode: 'stack', yaxis: { autorange: 'reversed', type: 'category', automargin: true },
      xaxis: { title: 'bytes on the wire' }, margin: { l: 10, r: 20, t: 10, b: 50 } });
  } else nothing('chart-hosts', 'No IP traffic.');
  if (convs.length) {
    const y = convs.map(c => `${c.a} ⇄ ${c.b}`);
    plot('chart-convs', [
      { type: 'bar', orientation: 'h', name: 'bytes A>B', y, x: convs.map(c => c.bytes_ab) },
      { type: 'bar', orientation: 'h', name: 'bytes B>A', y, x: convs.map(c => c.bytes_ba) },
    ], { barmode: 'stack', yaxis: { autorange: 'reversed', type: 'category', automargin: true },
      xaxis: { title: 'bytes on the wire' }, margin: { l: 10, r: 20, t: 10, b: 50 } });
  } else nothing('chart-convs', 'No IP traffic.');
  recordTable('table-hosts', D.hosts, [
    { key: 'addr', label: 'address' },
    { key: 'pkts', label: 'pkts', num: true, fmt: fmtInt },
    { key: 'bytes', label: 'bytes', num: true, fmt: fmtSize },
    { key: 'tx_bytes', label: 'tx bytes', num: true, fmt: fmtSize },
    { key: 'rx_bytes', label: 'rx bytes', num: true, fmt: fmtSize },
    { key: 'peers', label: 'peers', num: true, fmt: fmtInt },
  ], { id: 'hosts-table', pageSize: 25 });
  recordTable('table-convs', D.convs, [
    { key: 'a', label: 'address A' }, { key: 'b', label: 'address B' },
    { key: 'pkts', label: 'pkts', num: true, fmt: fmtInt },
    { key: 'bytes', label: 'bytes', num: true, fmt: fmtSize },
    { key: 'bytes_ab', label: 'bytes A>B', num: true, fmt: fmtSize },
    { key: 'bytes_ba', label: 'bytes B>A', num: true, fmt: fmtSize },
    { key: 'duration_ns', label: 'duration', num: true, fmt: fmtDur },
  ], { id: 'convs-table', pageSize: 25 });
  const note = (total, n, what) => total > n ? `The ${n} ${what} with the most bytes of ${fmtInt(total)}; --json lists them all.` : `${fmtInt(total)} ${what}.`;
  document.getElementById('table-hosts').prepend(el('p', { class: 'note', text: note(D.hosts_total, D.hosts.length, 'hosts') }));
  document.getElementById('table-convs').prepend(el('p', { class: 'note', text: note(D.convs_total, D.convs.length, 'conversations') }));
}

function scans() {
  const box = document.getElementById('scans');
  const list = D.ports.filter(r => r.type === 'scan');
  if (!list.length) {
    box.append(el('p', { class: 'note', text: 'No host probed 15 or more ports of another without an answer (the ports report\'s scan rule, docs/formats.md).' }));
    return;
  }
  const tableBox = el('div');
  box.append(tableBox);
  recordTable(tableBox, list, [
    { key: 'orig_h', label: 'scanner' }, { key: 'resp_h', label: 'target' },
    { key: 'proto', label: 'proto' },
    { key: 'ports', label: 'ports', num: true, fmt: fmtInt },
    { key: 'attempts', label: 'attempts', num: true, fmt: fmtInt },
    ...D.meta.outcomes.map(o => ({ key: o, label: word(o), num: true, fmt: fmtInt })),
    { key: 'answered_ports', label: 'answered on', fmt: v => v.slice(0, 10).join(', ') + (v.length > 10 ? ` and ${v.length - 10} more` : '') },
  ], { id: 'scans-table', pageSize: 10 });
  const s = list[0];
  const chart = el('div', { class: 'chart', id: 'chart-scan' });
  box.append(el('h3', { text: `${s.orig_h} → ${s.resp_h}: the ports probed, over time` }), chart);
  const by = {};
  for (let i = 0; i < CONN.n; i++) {
    if (CONN.get(i, 'id.orig_h') !== s.orig_h || CONN.get(i, 'id.resp_h') !== s.resp_h || CONN.get(i, 'proto') !== s.proto) continue;
    const o = CONN.get(i, 'outcome');
    const t = by[o] || (by[o] = { x: [], y: [], customdata: [] });
    t.x.push(CONN.startMs(i)); t.y.push(CONN.get(i, 'id.resp_p')); t.customdata.push(i);
  }
  plot('chart-scan', D.meta.outcomes.filter(o => by[o]).map(o => Object.assign({
    type: 'scatter', mode: 'markers', name: word(o), marker: { color: OUTCOME_COLORS[o], size: 5 },
    hovertemplate: 'port %{y}<extra></extra>' }, by[o])),
    { xaxis: { type: 'date', title: 'time (UTC)' }, yaxis: { title: `${s.proto} port` }, hovermode: 'closest' });
  chart.on('plotly_click', ev => { const p = ev.points && ev.points[0]; if (p) showLadder(p.customdata, true); });
}

// --- the connections table and ladders -----------------------------------------------------

let CONN_TABLE = null;

function connTable() {
  const rows = Array.from({ length: CONN.n }, (_, i) => i);
  const num = k => ({ key: k, label: k, num: true, fmt: fmtInt });
  CONN_TABLE = dataTable('table-conns', {
    id: 'conns-table', rows, get: connCell, pageSize: 50, onClick: i => showLadder(i, false),
    columns: [
      { key: 'ts_ns', label: 'start (UTC)', fmt: (v, i) => isoUtc(CONN.startMs(i)) },
      { key: 'uid', label: 'uid', fmt: (v, i) => (D.ladders[v] ? v + ' ▸' : v) },
      { key: 'proto', label: 'proto' },
      { key: 'id.orig_h', label: 'orig_h' }, { key: 'id.orig_p', label: 'orig_p', num: true },
      { key: 'id.resp_h', label: 'resp_h' }, { key: 'id.resp_p', label: 'resp_p', num: true },
      { key: 'port_service', label: 'service', fmt: v => v || '-' },
      { key: 'duration_ns', label: 'duration', num: true, fmt: fmtDur },
      num('orig_pkts'), num('resp_pkts'),
      { key: 'orig_bytes', label: 'orig_bytes', num: true, fmt: fmtInt },
      { key: 'resp_bytes', label: 'resp_bytes', num: true, fmt: fmtInt },
      { key: 'conn_state', label: 'conn_state' }, { key: 'history', label: 'history', fmt: v => v || '-' },
      { key: 'outcome', label: 'outcome', fmt: v => { const s = el('span'); s.append(el('span', { class: 'oc', style: `background:${OUTCOME_COLORS[v]}` }), word(v)); return s; } },
      { key: 'orig_state', label: 'orig state', fmt: v => v || '-' },
      { key: 'resp_state', label: 'resp state', fmt: v => v || '-' },
      { key: 'end_reason', label: 'end' },
      num('missed_bytes'), num('orig_ip_bytes'), num('resp_ip_bytes'),
    ],
    extraFilters: [
      { label: 'outcome', values: D.meta.outcomes.map(word), test: (i, v) => word(CONN.get(i, 'outcome')) === v },
      { label: 'proto', values: ['tcp', 'udp', 'icmp'], test: (i, v) => CONN.get(i, 'proto') === v },
      { label: 'ladder', values: ['embedded'], test: i => !!D.ladders[CONN.get(i, 'uid')] },
    ],
  });
  const m = D.meta;
  document.getElementById('table-conns').prepend(el('p', { class: 'note', text:
    m.ladders >= m.conns ? `Every connection's ladder is in this page (▸).`
      : `The ladders of ${fmtInt(m.ladders)} of the ${fmtInt(m.conns)} connections are in this page (▸; at most ${fmtInt(m.ladder_limit)}, ` +
        `taking turns over outcome and server port, troubled outcomes first); \`portlens ladder FILE --conn UID\` draws any other.` }));
}

function showLadder(i, scroll) {
  const uid = CONN.get(i, 'uid');
  const panel = document.getElementById('ladder-panel');
  panel.hidden = false;
  panel.replaceChildren();
  panel.dataset.uid = uid;
  const rec = D.ladders[uid];
  if (!rec) {
    panel.append(el('p', { class: 'note', text: `${uid}: no ladder in this page (it holds ${fmtInt(D.meta.ladders)} of ${fmtInt(D.meta.conns)}). ` +
      `portlens ladder FILE --conn ${uid} draws it.` }));
  } else {
    panel.append(el('pre', { text: `${rec.title}\n${rec.started}` }), ladderSvg(rec),
      el('pre', { text: `${rec.verdict}\n${rec.end}` }));
  }
  if (scroll) panel.scrollIntoView({ behavior: 'auto', block: 'start' });
}

const SVGNS = 'http://www.w3.org/2000/svg';
function svgEl(tag, attrs, text) {
  const e = document.createElementNS(SVGNS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// One row per segment: time and frame on the left, an arrow between the two lifelines with the
// segment's label above it, each endpoint's new state under its lifeline (as `portlens ladder`).
function ladderSvg(rec) {
  const L = 210, R = 910, W = 1120, ROW = 34, TOP = 58;
  const stateRows = rec.rows.filter(r => r[0] === 'seg' && (r[5] || r[6])).length;
  const height = TOP + rec.rows.length * ROW + stateRows * 14 + 30;
  const svg = svgEl('svg', { width: W, height, viewBox: `0 0 ${W} ${height}`, class: 'ladder',
    role: 'img', 'aria-label': rec.title });
  const defs = svgEl('defs', {});
  const marker = svgEl('marker', { id: 'arrowhead', markerWidth: 10, markerHeight: 8, refX: 9, refY: 4, orient: 'auto' });
  marker.append(svgEl('path', { d: 'M0,0 L10,4 L0,8 z', fill: '#333' }));
  defs.append(marker);
  svg.append(defs);
  svg.append(svgEl('text', { x: 10, y: 18, 'font-weight': 'bold' }, 'time'));
  svg.append(svgEl('text', { x: 100, y: 18, 'font-weight': 'bold' }, 'frame'));
  svg.append(svgEl('text', { x: L, y: 18, 'text-anchor': 'middle', 'font-weight': 'bold', class: 'end-client' }, rec.client));
  svg.append(svgEl('text', { x: R, y: 18, 'text-anchor': 'middle', 'font-weight': 'bold', class: 'end-server' }, rec.server));
  svg.append(svgEl('text', { x: L, y: 38, 'text-anchor': 'middle', fill: '#1f5fbf', class: 'state' }, rec.initial[0]));
  svg.append(svgEl('text', { x: R, y: 38, 'text-anchor': 'middle', fill: '#1f5fbf', class: 'state' }, rec.initial[1]));
  svg.append(svgEl('line', { x1: L, y1: 44, x2: L, y2: height - 10, stroke: '#999' }));
  svg.append(svgEl('line', { x1: R, y1: 44, x2: R, y2: height - 10, stroke: '#999' }));
  let y = TOP;
  for (const row of rec.rows) {
    if (row[0] === 'fold') {
      svg.append(svgEl('text', { x: (L + R) / 2, y: y + 16, 'text-anchor': 'middle', fill: '#777', class: 'fold' }, row[1]));
      y += ROW;
      continue;
    }
    const [, time, frame, fromOrig, text, os, rs] = row;
    const marked = text.includes('(');
    const g = svgEl('g', { class: 'seg', 'data-frame': frame });
    g.append(svgEl('text', { x: 10, y: y + 22, class: 'time' }, time));
    g.append(svgEl('text', { x: 100, y: y + 22, class: 'frame' }, String(frame)));
    const [x1, x2] = fromOrig ? [L, R] : [R, L];
    g.append(svgEl('line', { x1, y1: y + 24, x2, y2: y + 24, stroke: marked ? '#d62728' : '#333',
      'stroke-width': 1.4, 'marker-end': 'url(#arrowhead)' }));
    g.append(svgEl('text', { x: (L + R) / 2, y: y + 18, 'text-anchor': 'middle', fill: marked ? '#b00' : '#111', class: 'label' }, text));
    y += ROW;
    if (os || rs) {
      g.append(svgEl('text', { x: L, y: y + 4, 'text-anchor': 'middle', fill: '#1f5fbf', class: 'state orig' }, os));
      g.append(svgEl('text', { x: R, y: y + 4, 'text-anchor': 'middle', fill: '#1f5fbf', class: 'state resp' }, rs));
      y += 14;
    }
    svg.append(g);
  }
  return svg;
}

window.addEventListener('error', ev => {
  const box = document.getElementById('problems');
  if (box) box.append(el('div', { class: 'banner error', text: `report script error: ${ev.message}` }));
});
main().catch(err => { fail(`The report could not be drawn: ${err}`); console.error(err); });
