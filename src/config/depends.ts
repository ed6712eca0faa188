/**
 * Dependency order between services: a cycle makes `up` impossible, so it is
 * a config error naming the whole cycle ("a -> b -> a"), not a hang.
 */

/** A cycle in `edges` (service → the services it depends on) as a path that ends where it starts, or undefined. */
export function findCycle(edges: ReadonlyMap<string, readonly string[]>): string[] | undefined {
  const state = new Map<string, "active" | "done">();
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === "done") return undefined;
    if (state.get(node) === "active") return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, "active");
    stack.push(node);
    for (const next of edges.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle !== undefined) return cycle;
    }
    stack.pop();
    state.set(node, "done");
    return undefined;
  };
  for (const node of edges.keys()) {
    const cycle = visit(node);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
}
