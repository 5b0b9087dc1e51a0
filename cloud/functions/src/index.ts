/**
 * Entry point the Functions host loads (package.json `main` points at the built file): importing
 * each trigger module registers it with `@azure/functions`.
 */
import "./functions/sites.ts";
import "./functions/status-page.ts";
import "./functions/audit.ts";
import "./functions/onboarding-jobs.ts";
import "./functions/device-events.ts";
import "./functions/reconcile.ts";
