// TLS material loading (clear errors for bad files) and real handshakes over loopback:
// TLS, plaintext-against-TLS, wrong CA, mutual TLS with the peer's CN visible to the server.
import { writeFileSync } from 'node:fs';
import { request as httpsRequest, createServer as httpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  grpcChannelCredentials,
  grpcServerCredentials,
  httpsServerOptions,
  loadClientTls,
  loadServerTls,
  peerCommonName,
  TlsConfigError,
} from '../../src/shared/tls.js';
import { type CertDir, HAS_OPENSSL, makeCerts } from './helpers.js';

const identity = (b: Buffer): Buffer => b;
/** A one-method service on raw bytes that answers with the CN of the caller's certificate. */
const WHOAMI = {
  whoami: {
    path: '/test.Probe/WhoAmI',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
} satisfies grpc.ServiceDefinition;
const WhoAmIClient = grpc.makeGenericClientConstructor(WHOAMI, 'Probe');

async function startServer(creds: grpc.ServerCredentials): Promise<{ server: grpc.Server; port: number }> {
  const server = new grpc.Server();
  server.addService(WHOAMI, {
    whoami: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      const cn = peerCommonName(call.getAuthContext().sslPeerCertificate);
      cb(null, Buffer.from(cn ?? '(none)'));
    },
  });
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? rej(err) : res(p))),
  );
  return { server, port };
}

function whoami(port: number, creds: grpc.ChannelCredentials): Promise<string> {
  const client = new WhoAmIClient(`127.0.0.1:${port}`, creds);
  return new Promise<string>((res, rej) => {
    client.makeUnaryRequest(
      WHOAMI.whoami.path,
      identity,
      identity,
      Buffer.alloc(0),
      { deadline: Date.now() + 5000 },
      (err: grpc.ServiceError | null, value?: Buffer) => {
        client.close();
        if (err) rej(err);
        else res(value!.toString());
      },
    );
  });
}

describe.skipIf(!HAS_OPENSSL)('TLS files', () => {
  let certs: CertDir;
  let other: CertDir;
  beforeAll(() => {
    certs = makeCerts(['alice']);
    other = makeCerts(['alice']);
  });

  it('loads a valid server pair and reports its CN', () => {
    const m = loadServerTls({ cert: certs.serverCert, key: certs.serverKey });
    expect(m.subjectCn).toBe('localhost');
    expect(m.requireClientCert).toBe(false);
    expect(m.validTo.getTime()).toBeGreaterThan(Date.now());
  });

  it('names a missing file', () => {
    expect(() => loadServerTls({ cert: join(certs.dir, 'nope.pem'), key: certs.serverKey })).toThrow(
      /cannot read TLS certificate '.*nope\.pem': no such file/,
    );
  });

  it('refuses a file that is not PEM', () => {
    const junk = join(certs.dir, 'junk.pem');
    writeFileSync(junk, 'hello');
    expect(() => loadServerTls({ cert: junk, key: certs.serverKey })).toThrow(/is not PEM/);
    expect(() => loadServerTls({ cert: certs.serverCert, key: junk })).toThrow(/is not PEM/);
  });

  it('refuses a key that belongs to another certificate', () => {
    expect(() => loadServerTls({ cert: certs.serverCert, key: other.serverKey })).toThrow(TlsConfigError);
    expect(() => loadServerTls({ cert: certs.serverCert, key: other.serverKey })).toThrow(
      /does not belong to certificate/,
    );
    expect(() =>
      loadClientTls({
        ca: certs.ca,
        cert: certs.clientCert('alice'),
        key: certs.clientKey('alice').replace(certs.dir, other.dir),
      }),
    ).toThrow(/does not belong/);
  });

  it('refuses an expired certificate (checked against a clock past its end)', () => {
    expect(() =>
      loadServerTls({ cert: certs.serverCert, key: certs.serverKey }, new Date('2200-01-01')),
    ).toThrow(/expired on/);
  });

  it('requires the client CA for mutual TLS, and it must be a CA', () => {
    expect(() =>
      loadServerTls({ cert: certs.serverCert, key: certs.serverKey, requireClientCert: true }),
    ).toThrow(/--tls-client-ca/);
    expect(() =>
      loadServerTls({
        cert: certs.serverCert,
        key: certs.serverKey,
        clientCa: certs.serverCert,
        requireClientCert: true,
      }),
    ).toThrow(/not a CA certificate/);
  });

  it('requires client certificate and key together', () => {
    expect(() => loadClientTls({ ca: certs.ca, cert: certs.clientCert('alice') })).toThrow(/--key/);
    expect(() => loadClientTls({ ca: certs.ca, key: certs.clientKey('alice') })).toThrow(/--cert/);
    expect(
      loadClientTls({ ca: certs.ca, cert: certs.clientCert('alice'), key: certs.clientKey('alice') })
        .subjectCn,
    ).toBe('alice');
  });
});

describe.skipIf(!HAS_OPENSSL)('TLS handshakes over loopback', () => {
  let certs: CertDir;
  let other: CertDir;
  let tls: { server: grpc.Server; port: number };
  let mtls: { server: grpc.Server; port: number };

  beforeAll(async () => {
    certs = makeCerts(['alice', 'bob']);
    other = makeCerts(['alice']);
    tls = await startServer(
      grpcServerCredentials(loadServerTls({ cert: certs.serverCert, key: certs.serverKey })),
    );
    mtls = await startServer(
      grpcServerCredentials(
        loadServerTls({
          cert: certs.serverCert,
          key: certs.serverKey,
          clientCa: certs.ca,
          requireClientCert: true,
        }),
      ),
    );
  });
  afterAll(() => {
    tls?.server.forceShutdown();
    mtls?.server.forceShutdown();
  });

  it('a client trusting the CA completes a call; no client certificate means no CN', async () => {
    expect(await whoami(tls.port, grpcChannelCredentials(loadClientTls({ ca: certs.ca })))).toBe('(none)');
  });

  it('a plaintext client against the TLS server fails with UNAVAILABLE', async () => {
    await expect(whoami(tls.port, grpc.credentials.createInsecure())).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
  });

  it('a client trusting another CA refuses the server', async () => {
    await expect(
      whoami(tls.port, grpcChannelCredentials(loadClientTls({ ca: other.ca }))),
    ).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
  });

  it('mutual TLS: the server sees the client CN; no certificate or a foreign CA is refused', async () => {
    const as = (dir: CertDir, id: string) =>
      grpcChannelCredentials(
        loadClientTls({ ca: certs.ca, cert: dir.clientCert(id), key: dir.clientKey(id) }),
      );
    expect(await whoami(mtls.port, as(certs, 'alice'))).toBe('alice');
    expect(await whoami(mtls.port, as(certs, 'bob'))).toBe('bob');
    await expect(
      whoami(mtls.port, grpcChannelCredentials(loadClientTls({ ca: certs.ca }))),
    ).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
    await expect(whoami(mtls.port, as(other, 'alice'))).rejects.toMatchObject({
      code: grpc.status.UNAVAILABLE,
    });
  });

  it('HTTPS with the same material serves a client trusting the CA', async () => {
    const material = loadServerTls({ cert: certs.serverCert, key: certs.serverKey });
    const server = httpsServer(httpsServerOptions(material), (_req, res) => res.end('ok'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const body = await new Promise<string>((res, rej) => {
        const req = httpsRequest(
          {
            host: '127.0.0.1',
            port,
            path: '/',
            ca: loadClientTls({ ca: certs.ca }).ca,
            servername: 'localhost',
          },
          (r) => {
            let text = '';
            r.on('data', (c) => {
              text += c;
            });
            r.on('end', () => res(text));
          },
        );
        req.on('error', rej);
        req.end();
      });
      expect(body).toBe('ok');
      await expect(
        new Promise((res, rej) => {
          const req = httpsRequest(
            {
              host: '127.0.0.1',
              port,
              path: '/',
              ca: loadClientTls({ ca: other.ca }).ca,
              servername: 'localhost',
            },
            res,
          );
          req.on('error', rej);
          req.end();
        }),
      ).rejects.toThrow(/self[- ]signed|unable to verify|certificate/i);
    } finally {
      server.close();
    }
  });
});
