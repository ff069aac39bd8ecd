/**
 * Free TCP ports on the loopback interface for servers started by tests.
 * The port is free when returned; a server that binds it later may still
 * lose a race with another process, so callers bind promptly.
 */
import { createServer } from 'node:net';

export const LOOPBACK = '127.0.0.1';

/** A port on 127.0.0.1 that nothing listens on right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, LOOPBACK, () => {
      const address = server.address();
      if (address === null || typeof address === 'string') {
        server.close();
        reject(new Error('could not read the bound port'));
        return;
      }
      const { port } = address;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}
