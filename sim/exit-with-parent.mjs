// Preloaded (`node --import`) into every process the simulation and the tests start. A part whose
// parent died without stopping it (npm start killed with SIGKILL, a test file killed at its
// timeout before its cleanup ran) would otherwise run on as an orphan, holding its ports and CPU.
// Node has no PR_SET_PDEATHSIG, so the parent's pid is polled; the timer is unref'd, so it never
// keeps a process alive on its own. The spawner names itself in RF_PARENT_PID, because a child
// that starts slowly may only run this after its parent has already died. Plain JavaScript: it
// loads before tsx does.
const parent = Number(process.env.RF_PARENT_PID) || process.ppid;
const check = () => {
  if (process.ppid !== parent) process.exit(1);
};
check();
setInterval(check, 500).unref();
