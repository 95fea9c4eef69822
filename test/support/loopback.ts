import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/** Both ends of one TCP connection over 127.0.0.1, and the server that accepted it. */
export interface LoopbackPair {
  server: Server;
  /** The connecting end; its errors (the other end closing) are ignored. */
  client: Socket;
  /** The server's end, as a real server's code would hold it. */
  accepted: Socket;
}

export async function loopbackPair(): Promise<LoopbackPair> {
  const server = createServer();
  const accepted = new Promise<Socket>((resolve) => server.once('connection', resolve));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
  client.on('error', () => {});
  return { server, client, accepted: await accepted };
}

/** Closes all three. */
export function closePair(p: LoopbackPair): void {
  p.accepted.destroy();
  p.client.destroy();
  p.server.close();
}
