// TLS material from PEM files → gRPC server/channel credentials and node:https server options.
// Used by the coordinator (server side, optional mutual TLS) and by clients and operator tools
// (channel side). Everything is checked when loaded — file readable, PEM parseable, key belongs
// to the certificate, certificate currently valid — so a misconfiguration fails at start-up with
// a message naming the file and the fix, instead of as an opaque handshake failure later.
import { createPrivateKey, type KeyObject, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';

export class TlsConfigError extends Error {}

/** Files for the coordinator's TLS endpoint. */
export interface ServerTlsFiles {
  /** Server certificate chain (PEM), leaf first. */
  cert: string;
  /** Private key of the leaf certificate (PEM). */
  key: string;
  /** CA bundle that signs client certificates; required when requireClientCert is set. */
  clientCa?: string;
  /** Mutual TLS: reject connections without a client certificate signed by clientCa. */
  requireClientCert?: boolean;
}

/** Files for a client or operator tool connecting to the coordinator. */
export interface ClientTlsFiles {
  /** CA bundle that signs the coordinator's certificate; system roots when absent. */
  ca?: string;
  /** Client certificate (PEM) for mutual TLS; needs key as well. */
  cert?: string;
  /** Private key of the client certificate (PEM). */
  key?: string;
}

/** PEM bytes after validation, ready for grpc-js or node:https. */
export interface ServerTlsMaterial {
  cert: Buffer;
  key: Buffer;
  clientCa?: Buffer;
  requireClientCert: boolean;
  /** Subject common name of the leaf certificate, for log lines. */
  subjectCn: string;
  validTo: Date;
}

export interface ClientTlsMaterial {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  subjectCn?: string;
}

function readPem(path: string, what: string): Buffer {
  let data: Buffer;
  try {
    data = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'it is a directory'
            : (err as Error).message;
    throw new TlsConfigError(`cannot read ${what} '${path}': ${why}`);
  }
  if (!data.includes('-----BEGIN ')) {
    throw new TlsConfigError(`${what} '${path}' is not PEM (no '-----BEGIN' line); convert it with openssl`);
  }
  return data;
}

function parseCertificate(pem: Buffer, path: string, what: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new TlsConfigError(`${what} '${path}' is not a valid X.509 certificate: ${(err as Error).message}`);
  }
}

function parseKey(pem: Buffer, path: string): KeyObject {
  try {
    return createPrivateKey(pem);
  } catch (err) {
    const msg = (err as Error).message;
    const hint = /passphrase/i.test(msg)
      ? ' (encrypted keys are not supported; decrypt it with openssl)'
      : '';
    throw new TlsConfigError(`private key '${path}' cannot be parsed${hint}: ${msg}`);
  }
}

/** Checks validity period and that the key belongs to the certificate. */
function checkPair(
  cert: X509Certificate,
  key: KeyObject,
  certPath: string,
  keyPath: string,
  now: Date,
): void {
  if (!cert.checkPrivateKey(key)) {
    throw new TlsConfigError(
      `private key '${keyPath}' does not belong to certificate '${certPath}'; pass the key that was generated with it`,
    );
  }
  checkValidity(cert, certPath, now);
}

function checkValidity(cert: X509Certificate, path: string, now: Date): void {
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (now < from) throw new TlsConfigError(`certificate '${path}' is not valid before ${from.toISOString()}`);
  if (now > to) {
    throw new TlsConfigError(
      `certificate '${path}' expired on ${to.toISOString()}; issue a new one (scripts/make-certs.sh)`,
    );
  }
}

/** The CN of a subject string like "O=atomlens\nCN=alice". */
function commonNameOf(subject: string): string {
  for (const line of subject.split('\n')) if (line.startsWith('CN=')) return line.slice(3);
  return '';
}

function parseCaBundle(pem: Buffer, path: string, what: string, now: Date): X509Certificate {
  const ca = parseCertificate(pem, path, what);
  if (!ca.ca) {
    throw new TlsConfigError(
      `${what} '${path}' is not a CA certificate (basicConstraints CA:FALSE); pass the CA that signed the peers' certificates`,
    );
  }
  checkValidity(ca, path, now);
  return ca;
}

/** Reads and validates the coordinator's TLS files. */
export function loadServerTls(files: ServerTlsFiles, now: Date = new Date()): ServerTlsMaterial {
  const certPem = readPem(files.cert, 'TLS certificate');
  const keyPem = readPem(files.key, 'TLS private key');
  const cert = parseCertificate(certPem, files.cert, 'TLS certificate');
  checkPair(cert, parseKey(keyPem, files.key), files.cert, files.key, now);
  const requireClientCert = files.requireClientCert ?? false;
  let clientCa: Buffer | undefined;
  if (files.clientCa) {
    clientCa = readPem(files.clientCa, 'client CA');
    parseCaBundle(clientCa, files.clientCa, 'client CA', now);
  } else if (requireClientCert) {
    throw new TlsConfigError(
      'mutual TLS needs the CA that signs client certificates: pass --tls-client-ca FILE (ca.pem from scripts/make-certs.sh)',
    );
  }
  return {
    cert: certPem,
    key: keyPem,
    ...(clientCa ? { clientCa } : {}),
    requireClientCert,
    subjectCn: commonNameOf(cert.subject),
    validTo: new Date(cert.validTo),
  };
}

/**
 * Reads and validates the TLS files of a client or operator tool.
 * @internal exported for its tests
 */
export function loadClientTls(files: ClientTlsFiles, now: Date = new Date()): ClientTlsMaterial {
  if ((files.cert === undefined) !== (files.key === undefined)) {
    throw new TlsConfigError(
      files.cert
        ? 'a client certificate needs its private key: pass --key FILE as well'
        : 'a client private key needs its certificate: pass --cert FILE as well',
    );
  }
  const out: ClientTlsMaterial = {};
  if (files.ca) {
    out.ca = readPem(files.ca, 'CA certificate');
    parseCaBundle(out.ca, files.ca, 'CA certificate', now);
  }
  if (files.cert && files.key) {
    out.cert = readPem(files.cert, 'client certificate');
    out.key = readPem(files.key, 'client private key');
    const cert = parseCertificate(out.cert, files.cert, 'client certificate');
    checkPair(cert, parseKey(out.key, files.key), files.cert, files.key, now);
    out.subjectCn = commonNameOf(cert.subject);
  }
  return out;
}

/** gRPC server credentials from validated material (mTLS when requireClientCert). */
export function grpcServerCredentials(material: ServerTlsMaterial): grpc.ServerCredentials {
  return grpc.ServerCredentials.createSsl(
    material.clientCa ?? null,
    [{ cert_chain: material.cert, private_key: material.key }],
    material.requireClientCert,
  );
}

/** gRPC channel credentials from validated material. */
export function grpcChannelCredentials(material: ClientTlsMaterial): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(material.ca ?? null, material.key ?? null, material.cert ?? null);
}

/**
 * Options for https.createServer with the same certificate as gRPC. Client certificates are not
 * demanded on HTTP by default even under gRPC mTLS: scrapers and browsers rarely carry one, and
 * the protected HTTP routes check an operator token instead.
 */
export function httpsServerOptions(
  material: ServerTlsMaterial,
  options: { requireClientCert?: boolean } = {},
): {
  cert: Buffer;
  key: Buffer;
  ca?: Buffer;
  requestCert: boolean;
  rejectUnauthorized: boolean;
  minVersion: 'TLSv1.2';
} {
  if (options.requireClientCert && !material.clientCa) {
    throw new TlsConfigError('HTTPS client certificates need the client CA: pass --tls-client-ca FILE');
  }
  return {
    cert: material.cert,
    key: material.key,
    ...(material.clientCa ? { ca: material.clientCa } : {}),
    requestCert: options.requireClientCert ?? false,
    rejectUnauthorized: options.requireClientCert ?? false,
    minVersion: 'TLSv1.2',
  };
}

/** The common name of an authenticated peer certificate, or undefined when there is none. */
export function peerCommonName(cert: PeerCertificate | undefined): string | undefined {
  if (!cert?.subject) return undefined;
  const cn = cert.subject.CN as string | string[] | undefined;
  // A subject with several CN attributes is ambiguous as an identity: treat it as none.
  if (Array.isArray(cn)) return undefined;
  return cn || undefined;
}

/** The TLS flags of a CLI tool that dials the coordinator (--tls, --ca, --cert, --key). */
export interface ClientTlsFlags extends ClientTlsFiles {
  tls?: boolean;
}

/**
 * Client TLS material from a CLI tool's flags: loaded when any of tls/ca/cert/key is given
 * (system roots unless ca), undefined for plaintext. Throws TlsConfigError naming a bad file.
 */
export function clientTlsFromFlags(flags: ClientTlsFlags): ClientTlsMaterial | undefined {
  const { ca, cert, key } = flags;
  if (!flags.tls && ca === undefined && cert === undefined && key === undefined) return undefined;
  return loadClientTls({
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
  });
}
