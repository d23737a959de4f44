// A loopback port free for both UDP and TCP at the moment of asking, for servers a test starts.
import dgram from 'node:dgram';
import net from 'node:net';

export async function freePort(): Promise<number> {
  for (;;) {
    const u = dgram.createSocket('udp4');
    await new Promise<void>((r) => u.bind(0, '127.0.0.1', () => r()));
    const port = u.address().port;
    const ok = await new Promise<boolean>((resolve) => {
      const t = net.createServer();
      t.once('error', () => resolve(false));
      t.listen(port, '127.0.0.1', () => t.close(() => resolve(true)));
    });
    u.close();
    if (ok) return port;
  }
}
