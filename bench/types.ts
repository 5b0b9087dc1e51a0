/**
 * The shape every benchmark returns, so `npm run bench` can put all of them in one report.
 * Each `bench/<area>.bench.ts` exports `runBenchmark(): Promise<BenchSection>` and, when run
 * directly, prints its section as JSON.
 */
export interface BenchFigure {
  metric: string;
  value: number;
  unit: string;
  /** Figures measured in the same run for comparison (direct TCP, hyco-ws, socat …). */
  baselines?: Array<{ name: string; value: number }>;
  /** The figure this benchmark must reach, in words ("< 1.5 ms", ">= 1.3x hyco-ws"). */
  target?: string;
  /** Whether the target was met, when it can be judged mechanically. */
  met?: boolean;
}

export interface BenchSection {
  title: string;
  figures: BenchFigure[];
  notes?: string[];
}
