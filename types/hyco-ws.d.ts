/**
 * Types for `hyco-ws@1.0.5` (Azure Relay Hybrid Connections over the bundled `ws@1.1.5`), used only
 * by interop tests and the relay-path benchmark. Only what the project touches is declared; see
 * docs relay-protocol.md §3 for the library's behaviour and its hazards.
 */
declare module "hyco-ws" {
  import type { EventEmitter } from "node:events";

  /** A `ws@1.1.5` WebSocket (client side; also the rendezvous socket of a RelayedServer). */
  export interface LegacyWebSocket extends EventEmitter {
    readonly readyState: number;
    readonly bufferedAmount: number;
    /** ws@1 sends Buffers as binary frames; `cb` runs once the data is written. */
    send(
      data: Buffer | string,
      options?: { binary?: boolean; mask?: boolean },
      cb?: (err?: Error) => void,
    ): void;
    send(data: Buffer | string, cb?: (err?: Error) => void): void;
    close(code?: number, data?: string): void;
    terminate(): void;
    pause(): void;
    resume(): void;
    ping(data?: Buffer | string, options?: { mask?: boolean }, dontFailWhenClosed?: boolean): void;
  }

  export interface RelayedServerOptions {
    /** The full listen URI (`ws(s)://host[:port]/$hc/{path}?sb-hc-action=listen`). */
    server: string;
    /** A token, or a function returning one (called at connect and every hour to renew). */
    token: string | (() => string);
  }

  /** The listener: a control channel plus `connection` events with CONNECTING rendezvous sockets. */
  export interface RelayedServer extends EventEmitter {
    /** The control channel (ws@1.1.5), once connecting. */
    controlChannel?: LegacyWebSocket;
    close(callback?: (err?: Error) => void): void;
  }

  interface HycoWs {
    OPEN: number;
    CONNECTING: number;
    RelayedServer: new (options: RelayedServerOptions) => RelayedServer;
    createRelayedServer(options: RelayedServerOptions, fn?: (ws: LegacyWebSocket) => void): RelayedServer;
    relayedConnect(
      address: string,
      token: string | null,
      fn?: (ws: LegacyWebSocket) => void,
    ): LegacyWebSocket;
    createRelayToken(uri: string, keyName: string, key: string, expirationSeconds?: number): string;
  }

  const hycoWs: HycoWs;
  export default hycoWs;
}
