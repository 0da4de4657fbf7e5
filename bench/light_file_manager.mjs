// A light file-manager stand-in for benchmarks (SPEC §3), in Node with no dependencies.
//
// The Python mock (mock_api) spends about 0.5 ms of CPU a request, more than the service it
// serves: a benchmark through it measures the mock. This one does what the contract asks of a
// file manager (stream the upload to disk while hashing it, answer {path,size,sha256}; set
// permissions, delete, move with 404/409; replay the first answer of an Idempotency-Key;
// refuse bad paths with 400) and offers GET /files, GET /syncResults and GET /health for
// checks. No fault injection, no call log: tests and the demo keep using mock_api.
//
// Usage: node bench/light_file_manager.mjs --root DIR [--host 127.0.0.1] [--port 8001]
// (API_TOKEN in the environment: require that bearer token).

import { createHash } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";

const args = new Map();
for (let i = 2; i < process.argv.length; i += 2) args.set(process.argv[i], process.argv[i + 1]);
const ROOT = path.resolve(args.get("--root") ?? "data/light-storage");
const HOST = args.get("--host") ?? "127.0.0.1";
const PORT = Number(args.get("--port") ?? 8001);
const TOKEN = process.env.API_TOKEN || "";
const TMP_NAME = ".tmp"; // scratch folder inside ROOT, as the mock's; never a valid target
const TMP = path.join(ROOT, TMP_NAME);
// Bodies up to this size are kept in memory and written with one call; larger ones are streamed
// to the scratch file as they arrive, so memory stays bounded by this and the socket's buffers.
const IN_MEMORY_MAX = 1024 * 1024;
const MAX_PATH_BYTES = 1024;
const FORBIDDEN = /[\x00-\x1f\x7f\x80-\x9f\\]/;

/** path -> {size, sha256, permissions} of every stored file. */
const index = new Map();
/** `${op}\0${key}` -> [status, body text] of the first answer, or a Promise of it while pending. */
const answers = new Map();
const reports = [];
const knownDirs = new Set([ROOT]);
let tmpCounter = 0;

function scan(dir, prefix) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!prefix && entry.name === TMP_NAME) continue;
    const full = path.join(dir, entry.name);
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) {
      knownDirs.add(full);
      scan(full, rel);
    } else if (entry.isFile()) {
      const content = fs.readFileSync(full);
      index.set(rel, { size: content.length, sha256: createHash("sha256").update(content).digest("hex"), permissions: null });
    }
  }
}

/** Why SPEC §3 refuses `p`, or null when it is a valid path. */
function pathError(p, field = "path") {
  if (typeof p !== "string") return `field '${field}' must be a string`;
  let reason = null;
  if (p === "") reason = "empty path";
  else if (!p.isWellFormed()) reason = "not valid UTF-8";
  else if (Buffer.byteLength(p) > MAX_PATH_BYTES) reason = `longer than ${MAX_PATH_BYTES} bytes`;
  else if (p[0] === "/") reason = "leading '/'";
  else if (FORBIDDEN.test(p)) reason = p.match(FORBIDDEN)[0] === "\\" ? "backslash" : "control character";
  else if (p.split("/").some((s) => s === "" || s === "." || s === "..")) reason = "empty, '.' or '..' segment";
  else if (p === TMP_NAME || p.startsWith(`${TMP_NAME}/`)) reason = "reserved folder";
  return reason ? `invalid path: ${reason}` : null;
}

function send(res, status, text) {
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function ensureDir(dir) {
  if (knownDirs.has(dir)) return;
  fs.mkdirSync(dir, { recursive: true });
  knownDirs.add(dir);
}

/** Runs `apply` once per Idempotency-Key (the same key later, or meanwhile, gets its first answer). */
async function once(op, req, apply) {
  const key = req.headers["idempotency-key"];
  if (!key) return apply();
  const slot = `${op}\0${key}`;
  const known = answers.get(slot);
  if (known !== undefined) return known;
  const pending = apply();
  answers.set(slot, pending);
  let answer;
  try {
    answer = await pending;
  } catch (err) {
    answers.delete(slot);
    throw err;
  }
  if (answer[0] < 500) answers.set(slot, answer);
  else answers.delete(slot);
  return answer;
}

const conflict = (err) => ["EISDIR", "ENOTDIR", "EEXIST", "ENOTEMPTY"].includes(err.code);
const error = (status, message) => [status, JSON.stringify({ detail: message })];

function receiveFile(req, target) {
  return new Promise((resolve, reject) => {
    const hash = createHash("sha256");
    const tmp = path.join(TMP, `upload-${process.pid}-${tmpCounter++}`);
    let chunks = [];
    let size = 0;
    let stream = null;
    req.on("data", (chunk) => {
      hash.update(chunk);
      size += chunk.length;
      if (stream === null && size > IN_MEMORY_MAX) {
        stream = fs.createWriteStream(tmp);
        stream.on("error", reject);
        for (const c of chunks) stream.write(c);
        chunks = null;
      }
      if (stream === null) chunks.push(chunk);
      else if (!stream.write(chunk)) {
        req.pause();
        stream.once("drain", () => req.resume());
      }
    });
    req.on("error", reject);
    req.on("aborted", () => reject(new Error("client disconnected")));
    req.on("end", () => {
      const commit = () => {
        try {
          ensureDir(path.dirname(target));
          fs.renameSync(tmp, target);
          resolve({ size, sha256: hash.digest("hex") });
        } catch (err) {
          fs.rmSync(tmp, { force: true });
          reject(err);
        }
      };
      if (stream === null) {
        // Small bodies: the whole body is here and goes to the target in one synchronous write.
        // A scratch file and a rename would keep a crash from leaving a short file, at three
        // times the kernel's CPU (measured on ext4), which a benchmark stand-in does not need;
        // sync calls cost less than a hop through libuv's thread pool.
        try {
          ensureDir(path.dirname(target));
          fs.writeFileSync(target, chunks.length === 1 ? chunks[0] : Buffer.concat(chunks));
          resolve({ size, sha256: hash.digest("hex") });
        } catch (err) {
          reject(err);
        }
        return;
      }
      stream.end(commit);
    });
  });
}

function readJson(req) {
  return new Promise((resolve) => {
    const chunks = [];
    req.on("data", (c) => chunks.push(c));
    req.on("end", () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
        resolve(body !== null && typeof body === "object" && !Array.isArray(body) ? body : null);
      } catch {
        resolve(null);
      }
    });
    req.on("error", () => resolve(null));
  });
}

async function saveToDisk(req, url) {
  const p = url.searchParams.get("path");
  if (p === null) return error(400, "missing query parameter 'path'");
  const problem = pathError(p);
  if (problem) return error(400, problem);
  return once("saveToDisk", req, async () => {
    try {
      const { size, sha256 } = await receiveFile(req, path.join(ROOT, p));
      const old = index.get(p);
      index.set(p, { size, sha256, permissions: old ? old.permissions : null });
      return [200, JSON.stringify({ path: p, size, sha256 })];
    } catch (err) {
      if (conflict(err)) return error(409, `conflicts with stored content: ${p}`);
      return error(err.code ? 500 : 400, String(err.message));
    }
  });
}

async function updatePermissions(req) {
  const body = await readJson(req);
  if (body === null) return error(400, "body must be a JSON object");
  const problem = pathError(body.path);
  if (problem) return error(400, problem);
  const perms = body.permissions;
  if (perms === null || typeof perms !== "object" || Array.isArray(perms)) {
    return error(400, "field 'permissions' must be a JSON object");
  }
  return once("updatePermissions", req, async () => {
    const record = index.get(body.path);
    if (record === undefined) return error(404, `not found: ${body.path}`);
    record.permissions = perms;
    return [200, JSON.stringify({ path: body.path, permissions: perms })];
  });
}

async function deleteFile(req) {
  const body = await readJson(req);
  if (body === null) return error(400, "body must be a JSON object");
  const problem = pathError(body.path);
  if (problem) return error(400, problem);
  return once("deleteFile", req, async () => {
    if (!index.has(body.path)) return [200, JSON.stringify({ path: body.path, deleted: false })];
    fs.rmSync(path.join(ROOT, body.path), { force: true });
    index.delete(body.path);
    return [200, JSON.stringify({ path: body.path, deleted: true })];
  });
}

async function moveFile(req) {
  const body = await readJson(req);
  if (body === null) return error(400, "body must be a JSON object");
  const problem = pathError(body.from, "from") || pathError(body.to, "to");
  if (problem) return error(400, problem);
  const { from, to } = body;
  return once("moveFile", req, async () => {
    if (!index.has(from)) return error(404, `not found: ${from}`);
    if (index.has(to)) return error(409, `already exists: ${to}`);
    const target = path.join(ROOT, to);
    try {
      ensureDir(path.dirname(target));
      fs.renameSync(path.join(ROOT, from), target);
    } catch (err) {
      if (conflict(err)) return error(409, `conflicts with stored content: ${to}`);
      throw err;
    }
    index.set(to, index.get(from));
    index.delete(from);
    return [200, JSON.stringify({ from, to })];
  });
}

async function syncResults(req) {
  const body = await readJson(req);
  if (body === null) return error(400, "body must be a JSON object");
  return once("syncResults", req, async () => {
    reports.push(body);
    return [200, JSON.stringify({ received: true })];
  });
}

function files() {
  const rows = [...index.entries()].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return rows.map(([p, r]) => ({ path: p, size: r.size, sha256: r.sha256, permissions: r.permissions }));
}

const POSTS = { "/saveToDisk": saveToDisk, "/updatePermissions": updatePermissions,
  "/deleteFile": deleteFile, "/moveFile": moveFile, "/syncResults": syncResults };

async function handle(req, res) {
  const url = new URL(req.url, "http://stand-in");
  if (req.method === "GET" && url.pathname === "/health") return send(res, 200, '{"status":"ok"}');
  if (TOKEN && req.headers.authorization !== `Bearer ${TOKEN}`) {
    req.resume();
    return send(res, 401, '{"detail":"missing or wrong bearer token"}');
  }
  if (req.method === "GET" && url.pathname === "/files") return send(res, 200, JSON.stringify(files()));
  if (req.method === "GET" && url.pathname === "/syncResults") return send(res, 200, JSON.stringify(reports));
  const endpoint = req.method === "POST" ? POSTS[url.pathname] : undefined;
  if (endpoint === undefined) {
    req.resume();
    return send(res, 404, '{"detail":"Not Found"}');
  }
  let answer;
  try {
    answer = await endpoint(req, url);
  } catch (err) {
    answer = error(500, String(err.message));
  }
  req.resume(); // a refused or replayed upload still has an unread body
  if (req.complete) send(res, answer[0], answer[1]);
  else req.on("end", () => send(res, answer[0], answer[1]));
}

fs.mkdirSync(TMP, { recursive: true });
scan(ROOT, "");
const server = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  handle(req, res).catch((err) => send(res, 500, JSON.stringify({ detail: String(err.message) })));
});
server.listen(PORT, HOST, () => {
  process.stderr.write(`light file manager: serving on http://${HOST}:${PORT} (root ${ROOT}, ` +
    `auth ${TOKEN ? "on" : "off"}, ${index.size} files)\n`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
