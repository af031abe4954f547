// k6: the mixed load of the original server's own load test. One user (many devices), ramping
// from 1 to 200 virtual users over RAMP (default 3m30s):
//   60%  push 1–10 random changes to one of five apps (since = one minute ago), then pull one
//        table of that app (since = five minutes ago);
//   25%  pull only (since = ten minutes ago);
//   15%  GET /health.
//   k6 run -e BASE=http://127.0.0.1:3250 -e TOKEN=... bench/sync-mixed.js
import http from 'k6/http';

const apps = ['todo', 'notes', 'calendar', 'contacts', 'budget'];
const tables = ['items', 'lists', 'tags'];
const minutesAgo = (m) => new Date(Date.now() - m * 60_000).toISOString();
const pick = (list) => list[Math.floor(Math.random() * list.length)];

export const options = {
  scenarios: {
    mixed: {
      executor: 'ramping-vus', startVUs: 1,
      stages: [{ duration: __ENV.RAMP || '3m30s', target: parseInt(__ENV.VUS || '200') }],
      gracefulRampDown: '5s',
    },
  },
  summaryTrendStats: ['med', 'p(95)', 'p(99)', 'max'],
  // Tags the thresholds need (`name`: push, pull, health); the other system tags cost k6 CPU on
  // the service's cores for nothing (bench/k6-options.js).
  systemTags: ['status', 'name'],
  thresholds: {
    'http_req_duration{name:push}': ['p(95)<300'],
    'http_req_duration{name:pull}': ['p(95)<200'],
    http_req_duration: ['p(95)<500', 'p(99)<1000'],
    http_req_failed: ['rate<0.01'],
  },
};

// Only statuses are checked: k6 keeps no copy of the answers (a push's or pull's page is up to
// 1,000 changes, ~200 KB, and copying it into a JavaScript string cost k6 a third of the
// machine's CPU in this scenario). Any status but 200 counts as failed (`http_req_failed`, whose
// threshold is < 1%): the same test as a check per request, without a check sample per request.
http.setResponseCallback(http.expectedStatuses(200));
const headers = { 'Content-Type': 'application/json', Authorization: `Bearer ${__ENV.TOKEN}`, 'X-Client-Id': `device-${__VU}` };

function pull(app, since) {
  http.get(`${__ENV.BASE}/sync/${app}/pull?collection=${pick(tables)}&since=${encodeURIComponent(since)}`,
    { headers, tags: { name: 'pull' }, responseType: 'none' });
}

export default function () {
  const roll = Math.random();
  const app = pick(apps);
  if (roll < 0.6) {
    const changes = [];
    const count = 1 + Math.floor(Math.random() * 10);
    for (let i = 0; i < count; i++) {
      const id = `r${Math.floor(Math.random() * 2000)}`;
      if (Math.random() < 0.5) {
        changes.push({ table: pick(tables), id, op: 'insert', data: { id, title: `title ${__ITER}`, done: false, n: i } });
      } else {
        changes.push({ table: pick(tables), id, op: 'update',
          fields: { title: { value: `edit ${__VU}-${__ITER}`, updatedAt: new Date().toISOString() } } });
      }
    }
    http.post(`${__ENV.BASE}/sync/${app}`, JSON.stringify({ clientId: `device-${__VU}`, since: minutesAgo(1), changes }),
      { headers, tags: { name: 'push' }, responseType: 'none' });
    pull(app, minutesAgo(5));
  } else if (roll < 0.85) {
    pull(app, minutesAgo(10));
  } else {
    http.get(`${__ENV.BASE}/health`, { tags: { name: 'health' }, responseType: 'none' });
  }
}
