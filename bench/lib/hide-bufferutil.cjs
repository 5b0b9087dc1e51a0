// Preloaded (--require) into the hyco-ws baseline processes only. hyco-ws@1.0.5 as published brings
// ws@1.1.5, which does not depend on bufferutil (it only tries `require("bufferutil")`), so a user
// who installs hyco-ws masks frames in JavaScript. This project depends on bufferutil for ws@8, and
// ws@1.1.5 would find it in the shared node_modules; hiding it keeps the baseline what users run.
const Module = require("node:module");
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function resolveWithoutBufferutil(request, ...rest) {
  if (request === "bufferutil" || request.startsWith("bufferutil/")) {
    const err = new Error("Cannot find module 'bufferutil' (hidden from the hyco-ws baseline)");
    err.code = "MODULE_NOT_FOUND";
    throw err;
  }
  return resolveFilename.call(this, request, ...rest);
};
