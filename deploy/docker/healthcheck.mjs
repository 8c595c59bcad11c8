// Container health probe (the Dockerfile's HEALTHCHECK): GET /healthz on the coordinator's HTTP
// port on loopback. Over HTTPS when the coordinator serves TLS — its certificate is not verified,
// this is a liveness check of our own process, not a trust decision — and over plain HTTP when it
// does not. Exit 0 only for 200, so auth.health must stay "open" (the default) for the probe.
import http from 'node:http';
import https from 'node:https';

const port = Number(process.env.ATOMLENS_HTTP_PORT || 9464);

function healthy(transport, extra) {
  return new Promise((resolve) => {
    const req = transport.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 4000, ...extra }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}

const ok = (await healthy(https, { rejectUnauthorized: false })) || (await healthy(http, {}));
process.exit(ok ? 0 : 1);
