/**
 * The part of azure-iot-device's `ModuleClient` / `Twin` the module uses, typed locally so the
 * SDK's `any`s stay out of the module's code and tests can drive the twin logic directly.
 */
import type { SdkRetryPolicy } from "./hub-retry.ts";

export interface ModuleTwin {
  properties: {
    desired: Record<string, unknown>;
    reported: { update(patch: unknown, done: (err?: Error) => void): void; [key: string]: unknown };
  };
  on(event: "properties.desired", listener: (patch: Record<string, unknown>) => void): unknown;
}

export interface MethodRequestView {
  methodName: string;
  payload: unknown;
}

export interface MethodResponder {
  send(status: number, payload: unknown, done: (err?: Error) => void): void;
}

export interface ModuleHubClient {
  open(): Promise<unknown>;
  close(): Promise<unknown>;
  getTwin(): Promise<ModuleTwin>;
  /** Device-to-cloud message on a module output (the SDK's Message); absent in some tests. */
  sendOutputEvent?(outputName: string, message: unknown): Promise<unknown>;
  onMethod(name: string, handler: (req: MethodRequestView, res: MethodResponder) => void): void;
  /** The SDK's retry policy for its own reconnects (absent in some tests). */
  setRetryPolicy?(policy: SdkRetryPolicy): void;
  on(event: "connect", listener: () => void): unknown;
  on(event: "disconnect", listener: (reason?: unknown) => void): unknown;
  on(event: "error", listener: (err: Error) => void): unknown;
}
