// hyco-ws@1.0.5 lists "http" as a registry dependency; Node's core module is what it means.
module.exports = require("node:http");
