/**
 * CPU and memory of a process by its pid, from /proc (Linux): CPU seconds used (user + system)
 * and resident memory, sampled so a benchmark can give the peak and the mean over a phase.
 */
import { readFileSync } from "node:fs";

const TICKS_PER_SECOND = 100; // USER_HZ on Linux

export interface ProcSample {
  cpuSeconds: number;
  rssMb: number;
}

export function sampleProc(pid: number): ProcSample | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime (fields 14, 15)
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { cpuSeconds: ticks / TICKS_PER_SECOND, rssMb: rssKb / 1024 };
  } catch {
    return undefined;
  }
}

/** Samples `pid` every `everyMs` until `stop()`: CPU used in the phase, mean CPU share, peak RSS. */
export function watchProc(pid: number, everyMs = 1_000) {
  const first = sampleProc(pid);
  const began = Date.now();
  let peakRssMb = first?.rssMb ?? 0;
  let last = first;
  const timer = setInterval(() => {
    const s = sampleProc(pid);
    if (!s) return;
    last = s;
    peakRssMb = Math.max(peakRssMb, s.rssMb);
  }, everyMs);
  timer.unref();
  return {
    stop() {
      clearInterval(timer);
      const end = sampleProc(pid) ?? last;
      const seconds = (Date.now() - began) / 1_000;
      const cpuSeconds = (end?.cpuSeconds ?? 0) - (first?.cpuSeconds ?? 0);
      return {
        cpuSeconds,
        meanCpuPercent: seconds > 0 ? (100 * cpuSeconds) / seconds : 0,
        peakRssMb: Math.max(peakRssMb, end?.rssMb ?? 0),
        rssMb: end?.rssMb ?? 0,
      };
    },
  };
}

/** 1-minute load average and the machine's cores, for the report's note on machine load. */
export function machineLoad(): string {
  try {
    const [one, five] = readFileSync("/proc/loadavg", "utf8").split(" ");
    return `load average ${one} (1 min), ${five} (5 min)`;
  } catch {
    return "load average unknown";
  }
}
