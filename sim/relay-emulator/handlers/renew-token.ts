/**
 * `{"renewToken":{"token":"..."}}` on a control channel (relay-protocol.md §1.5): a valid token for
 * the same hybrid connection with the Listen right moves the expiry; anything else closes the
 * channel with 1008. No reply on success, as the service sends none.
 */
import type { Logger } from "../../../lib/log.ts";
import { authorize } from "../auth.ts";
import type { HybridConnection, Namespace } from "../namespace.ts";

/** The control channel a renewal arrived on (control-channel.ts, which calls this handler). */
export interface RenewingChannel {
  readonly id: string;
  readonly hc: HybridConnection;
  renew(expiresAtSeconds: number): void;
  close(code: number, reason: string): void;
}

export function handleRenewToken(
  ctx: { namespace: Namespace; logger: Logger },
  channel: RenewingChannel,
  body: unknown,
): void {
  const token =
    typeof body === "object" && body !== null && typeof (body as { token?: unknown }).token === "string"
      ? (body as { token: string }).token
      : undefined;
  const auth = authorize(ctx.namespace, channel.hc, "Listen", token);
  if (!auth.ok) {
    ctx.logger.info(
      { hc: channel.hc.name, listener: channel.id, reason: auth.description },
      "renewToken refused",
    );
    channel.close(1008, `renewToken refused: ${auth.description}`.slice(0, 120));
    return;
  }
  channel.renew(auth.expiresAt);
  ctx.logger.debug({ hc: channel.hc.name, listener: channel.id, expiresAt: auth.expiresAt }, "token renewed");
}
