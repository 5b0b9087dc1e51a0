/**
 * `{"renewToken":{"token":"..."}}` on a control channel (relay-protocol.md §1.5): a valid token for
 * the same hybrid connection with the Listen right moves the expiry; anything else closes the
 * channel with 1008. No reply on success, as the service sends none.
 */
import { authorize } from "../auth.ts";
import type { EmulatorContext } from "../context.ts";
import type { ControlChannel } from "../control-channel.ts";

export function handleRenewToken(ctx: EmulatorContext, channel: ControlChannel, body: unknown): void {
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
