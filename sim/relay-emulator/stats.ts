/** Counters the tests of every part assert on (`emulator.stats()`, `GET /$admin/stats`). */

export interface HybridConnectionCounters {
  connects: number;
  accepts: number;
  rejects: number;
  listenAttempts: number;
}

export interface RelayEmulatorStats {
  /** Per hybrid connection (existing ones; counters survive until the emulator closes). */
  hybridConnections: Record<string, HybridConnectionCounters & { listeners: number }>;
  listeners: number;
  listenAttempts: number;
  listenAttemptsBySource: Record<string, number>;
  listenRateLimited: number;
  listenersRefusedOverQuota: number;
  /** Listens and connects refused because the namespace was at its connection quota. */
  refusedOverNamespaceQuota: number;
  connects: number;
  accepts: number;
  rejects: number;
  rendezvousExpired: number;
  authFailures: number;
  badRequests: number;
  activeConnections: number;
  totalConnections: number;
  bytesSenderToListener: number;
  bytesListenerToSender: number;
  messagesRelayed: number;
  /** Highest bufferedAmount seen on any relayed leg: what backpressure bounds. */
  peakBufferedBytes: number;
  /** Times a reading leg was paused because the writing leg was full. */
  backpressurePauses: number;
  controlChannelsClosed: Record<string, number>;
  tcpRefusedDuringOutage: number;
}

export class Stats {
  listenAttempts = 0;
  listenAttemptsBySource = new Map<string, number>();
  listenRateLimited = 0;
  listenersRefusedOverQuota = 0;
  refusedOverNamespaceQuota = 0;
  connects = 0;
  accepts = 0;
  rejects = 0;
  rendezvousExpired = 0;
  authFailures = 0;
  badRequests = 0;
  activeConnections = 0;
  totalConnections = 0;
  bytesSenderToListener = 0;
  bytesListenerToSender = 0;
  messagesRelayed = 0;
  peakBufferedBytes = 0;
  backpressurePauses = 0;
  tcpRefusedDuringOutage = 0;
  readonly controlChannelsClosed = new Map<number, number>();
  private readonly perHc = new Map<string, HybridConnectionCounters>();

  hc(name: string): HybridConnectionCounters {
    const key = name.toLowerCase();
    let c = this.perHc.get(key);
    if (!c) {
      c = { connects: 0, accepts: 0, rejects: 0, listenAttempts: 0 };
      this.perHc.set(key, c);
    }
    return c;
  }

  controlClosed(code: number): void {
    this.controlChannelsClosed.set(code, (this.controlChannelsClosed.get(code) ?? 0) + 1);
  }

  snapshot(hybridConnections: Array<{ name: string; listeners: number }>): RelayEmulatorStats {
    const perHc: RelayEmulatorStats["hybridConnections"] = {};
    let listeners = 0;
    for (const hc of hybridConnections) {
      perHc[hc.name] = { ...this.hc(hc.name), listeners: hc.listeners };
      listeners += hc.listeners;
    }
    return {
      hybridConnections: perHc,
      listeners,
      listenAttempts: this.listenAttempts,
      listenAttemptsBySource: Object.fromEntries(this.listenAttemptsBySource),
      listenRateLimited: this.listenRateLimited,
      listenersRefusedOverQuota: this.listenersRefusedOverQuota,
      refusedOverNamespaceQuota: this.refusedOverNamespaceQuota,
      connects: this.connects,
      accepts: this.accepts,
      rejects: this.rejects,
      rendezvousExpired: this.rendezvousExpired,
      authFailures: this.authFailures,
      badRequests: this.badRequests,
      activeConnections: this.activeConnections,
      totalConnections: this.totalConnections,
      bytesSenderToListener: this.bytesSenderToListener,
      bytesListenerToSender: this.bytesListenerToSender,
      messagesRelayed: this.messagesRelayed,
      peakBufferedBytes: this.peakBufferedBytes,
      backpressurePauses: this.backpressurePauses,
      controlChannelsClosed: Object.fromEntries(
        [...this.controlChannelsClosed].map(([k, v]) => [String(k), v]),
      ),
      tcpRefusedDuringOutage: this.tcpRefusedDuringOutage,
    };
  }
}
