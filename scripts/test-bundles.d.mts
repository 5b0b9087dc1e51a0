// Types for scripts/test-bundles.mjs (plain JavaScript: the test runner imports it before tsx).
export declare const CHILD_ENTRIES: readonly string[];
export declare function buildTestBundles(): Promise<string>;
