/**
 * A small ARM template expression parser and evaluator, enough for the functions `infra/main.json`
 * uses, so the infrastructure tests can check that every expression parses, that every parameter
 * and variable it names exists, and what the template computes from its parameters (names, port
 * ranges, app settings, cloud-init) without a subscription. Values only Azure knows at deployment
 * (`reference`, `listKeys`) evaluate to a `Deferred` marker that strings carry along. The
 * document, the parser and the evaluator are each their own file; the tests import them here.
 */

export * from "./arm-evaluate.ts";
export * from "./arm-expression.ts";
export * from "./arm-template-document.ts";
