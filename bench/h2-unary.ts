// A minimal gRPC unary caller on node:http2, for the load generator: one HTTP/2 session per
// simulated client, each call one stream carrying one length-prefixed message (gRPC over HTTP/2,
// https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md). It costs the generator about
// half the CPU per call of a grpc-js client, which matters when generator and coordinator share
// two cores. Responses are not decoded: the status is all the load test needs.
import { type ClientHttp2Session, connect, constants } from 'node:http2';

export interface UnaryOutcome {
  /** grpc-status (0 = OK); -1 when the stream failed before a status arrived. */
  code: number;
  message: string;
}

export interface H2UnaryClient {
  /** Opens a new connection now (instead of at the first call) and resolves once it is up. */
  connect(): Promise<void>;
  /** Sends one framed request (frameMessage) on a new stream; done gets the call's status. */
  call(path: string, framed: Buffer, headers: Record<string, string>, done: (o: UnaryOutcome) => void): void;
  close(): void;
}

/** Length-prefixed message: 1 byte compressed flag (0), 4 bytes big-endian length, the bytes. */
export function frameMessage(message: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(5 + message.length);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  message.copy(framed, 5);
  return framed;
}

export function h2UnaryClient(address: string, tls?: { ca: Buffer; servername: string }): H2UnaryClient {
  let session: ClientHttp2Session | undefined;
  const open = () => {
    const s = tls
      ? connect(`https://${address}`, { ca: tls.ca, servername: tls.servername })
      : connect(`http://${address}`);
    // A failed session ends its streams with an error; the next call opens a new one.
    s.on('error', () => {});
    s.on('close', () => {
      if (session === s) session = undefined;
    });
    return s;
  };
  const live = () => {
    if (!session || session.destroyed || session.closed) session = open();
    return session;
  };
  return {
    connect() {
      const s = live();
      // Up once the server's SETTINGS (its concurrent-stream limit among them) have arrived.
      return new Promise((resolve, reject) => {
        s.once('remoteSettings', () => resolve());
        s.once('error', reject);
      });
    },
    call(path, framed, headers, done) {
      let stream: ReturnType<ClientHttp2Session['request']>;
      try {
        stream = live().request({
          [constants.HTTP2_HEADER_METHOD]: 'POST',
          [constants.HTTP2_HEADER_PATH]: path,
          [constants.HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc',
          [constants.HTTP2_HEADER_TE]: 'trailers',
          ...headers,
        });
      } catch (err) {
        // A session going away between calls: this call fails, the next one reconnects.
        session = undefined;
        setImmediate(() => done({ code: -1, message: (err as Error).message }));
        return;
      }
      let code = -1;
      let text = '';
      const take = (h: Record<string, unknown>) => {
        const status = h['grpc-status'];
        if (status !== undefined) {
          code = Number(status);
          text = decodeURIComponent(String(h['grpc-message'] ?? ''));
        }
      };
      stream.on('response', take);
      stream.on('trailers', take);
      // The response message is not needed; reading keeps flow control moving.
      stream.on('data', () => {});
      stream.on('error', (err) => {
        if (code === -1) text = err.message;
      });
      stream.on('close', () => done({ code, message: text }));
      stream.end(framed);
    },
    close() {
      session?.close();
      session = undefined;
    },
  };
}
