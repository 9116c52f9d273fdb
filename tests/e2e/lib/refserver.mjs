// refserver.mjs: a loopback HTTP server of reference images for image-to-image tests, with a
// tiny PNG encoder (IHDR, IDAT, IEND; zlib.deflateSync + CRC-32) and counters of what it
// served, so a test can prove that a blocked fetch never opened a connection.
import http from 'node:http';
import zlib from 'node:zlib';

const CRC_TABLE = (() => {
  const tbl = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    tbl[n] = c >>> 0;
  }
  return tbl;
})();

export function crc32(buf) {
  let c = 0xffffffff;
  for (const b of buf) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(data.length);
  const td = Buffer.concat([Buffer.from(type, 'latin1'), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(td));
  return Buffer.concat([len, td, crc]);
}

/** An 8-bit RGB PNG of width x height; pixel(x, y) -> [r, g, b] (default: a gradient). */
export function makePng(width, height, pixel) {
  const px = pixel ?? ((x, y) => [(x * 255 / Math.max(1, width - 1)) | 0, (y * 255 / Math.max(1, height - 1)) | 0, 128]);
  const raw = Buffer.alloc((width * 3 + 1) * height);
  let o = 0;
  for (let y = 0; y < height; y++) {
    raw[o++] = 0; // filter: none
    for (let x = 0; x < width; x++) {
      const [r, g, b] = px(x, y);
      raw[o++] = r; raw[o++] = g; raw[o++] = b;
    }
  }
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0);
  ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8;  // bit depth
  ihdr[9] = 2;  // colour type: RGB
  ihdr[10] = 0; // compression
  ihdr[11] = 0; // filter
  ihdr[12] = 0; // interlace
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', ihdr),
    chunk('IDAT', zlib.deflateSync(raw)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

export const PNG_640x480 = makePng(640, 480);
export const PNG_300x600 = makePng(300, 600, (x, y) => [200, (x + y) & 0xff, (x * 3) & 0xff]);

export const HUGE_BYTES = 16 * 1024 * 1024;

/**
 * Start the reference server on 127.0.0.1:0. Paths:
 *   /a.png (640x480, 4:3), /b.png (300x600, 1:2), /404 (404), /html (200 text/html),
 *   /huge (a PNG-looking body of HUGE_BYTES with Content-Length),
 *   /huge-chunked (the same without Content-Length), /redirect (302 to /a.png),
 *   /img/<anything>.png (the 640x480 PNG: distinct URLs for one picture).
 * Returns {port, base, url(path), requests, connections, hits(path), close()}.
 */
export function startRefServer() {
  const counts = new Map();
  const state = { requests: 0, connections: 0 };
  const server = http.createServer((req, res) => {
    state.requests++;
    const p = new URL(req.url, 'http://x').pathname;
    counts.set(p, (counts.get(p) ?? 0) + 1);
    const png = (buf) => {
      res.writeHead(200, { 'Content-Type': 'image/png', 'Content-Length': buf.length });
      res.end(buf);
    };
    if (p === '/a.png' || p.startsWith('/img/')) return png(PNG_640x480);
    if (p === '/b.png') return png(PNG_300x600);
    if (p === '/404') {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      return res.end('not here\n');
    }
    if (p === '/html') {
      res.writeHead(200, { 'Content-Type': 'text/html' });
      return res.end('<!doctype html><html><head><title>x</title></head><body>not an image</body></html>\n');
    }
    if (p === '/redirect') {
      res.writeHead(302, { Location: '/a.png' });
      return res.end();
    }
    if (p === '/huge' || p === '/huge-chunked') {
      const headers = { 'Content-Type': 'image/png' };
      if (p === '/huge') headers['Content-Length'] = HUGE_BYTES;
      res.writeHead(200, headers);
      const block = Buffer.alloc(64 * 1024, 0x41);
      PNG_640x480.copy(block, 0, 0, 64);
      let sent = 0;
      const pump = () => {
        while (sent < HUGE_BYTES) {
          sent += block.length;
          if (!res.write(block)) return res.once('drain', pump);
        }
        res.end();
      };
      res.on('error', () => {});
      req.socket.on('error', () => {});
      return pump();
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('unknown path\n');
  });
  server.on('connection', (sock) => {
    state.connections++;
    sock.on('error', () => {});
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = server.address().port;
      const base = `http://127.0.0.1:${port}`;
      resolve({
        port,
        base,
        url: (p) => `${base}${p}`,
        get requests() { return state.requests; },
        get connections() { return state.connections; },
        hits: (p) => counts.get(p) ?? 0,
        close: () => new Promise((r) => {
          server.closeAllConnections?.();
          server.close(() => r());
        }),
      });
    });
  });
}
