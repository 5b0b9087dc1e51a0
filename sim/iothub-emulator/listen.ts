import type { AddressInfo, Server } from "node:net";

/** Binds `server` (MQTT, REST or workload API) and resolves with the port it got (0 = any free). */
export function listenOn(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}
