// k6: POST /sync/{appId} with batches of BATCH changes from VUS clients over many users.
//   k6 run -e BASE=http://127.0.0.1:3250 -e TOKENS=tokens.json -e BATCH=10 -e VUS=32 bench/sync-push.js
import http from 'k6/http';
import { expectOK, lean, loadOptions } from './k6-options.js';

const tokens = JSON.parse(open(__ENV.TOKENS));
const batch = parseInt(__ENV.BATCH || '1');

export const options = loadOptions(2000);

const url = `${__ENV.BASE}/sync/bench`;
// Each user's request options, built once (responseType 'none': only the status is checked,
// k6 keeps no copy of the body).
const params = tokens.map((token) => ({
  headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${token}` },
  responseType: 'none',
}));

// The changes' JSON text, built once and cut where each record id's per-push prefix goes:
// each push joins its prefix in with one native call instead of building BATCH objects and
// stringifying them in JavaScript, which cost k6 about 1 ms of CPU per 100-change push on the
// cores the service shares (docs/benchmarks.md, session 39). The bytes are JSON.stringify's.
const change = (prefix, i) => ({ table: 'items', id: `${prefix}${i}`, op: 'insert', data: { n: i, text: 'benchmark row' } });
const MARK = '\u0000';
const pieces = JSON.stringify(Array.from({ length: batch }, (_, i) => change(MARK, i)))
  .split(JSON.stringify(MARK).slice(1, -1));

// The body as the old script built it: BATCH objects stringified per push (K6_LEAN=0).
function stringifiedBody(prefix, since) {
  const changes = [];
  for (let i = 0; i < batch; i++) {
    changes.push(change(prefix, i));
  }
  return JSON.stringify({ clientId: `vu-${__VU}`, since, changes });
}

function joinedBody(prefix, since) {
  return `{"clientId":"vu-${__VU}","since":"${since}","changes":${pieces.join(prefix)}}`;
}

// Both ways send the same bytes: checked once per virtual user, before any request.
const sample = new Date().toISOString();
if (joinedBody('1-2-', sample) !== stringifiedBody('1-2-', sample)) {
  throw new Error('sync-push.js: the joined body differs from JSON.stringify of the same push');
}

function pushBody(since) {
  const prefix = `${__VU}-${__ITER}-`;
  return lean ? joinedBody(prefix, since) : stringifiedBody(prefix, since);
}

export default function () {
  const user = (__VU * 7919 + __ITER) % tokens.length;
  // `since` = now keeps the answer small: the benchmark measures storing, not catching up.
  const body = pushBody(new Date().toISOString());
  if (lean) {
    expectOK(http.post(url, body, params[user]));
    return;
  }
  expectOK(http.post(`${__ENV.BASE}/sync/bench`, body, {
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${tokens[user]}` },
    responseType: 'none',
  }));
}
