/** The module twin contract of `relayListener` (see README.md in this folder). */
export { type ConfigChange, diffConfig } from "./diff.ts";
export { fitReported, REPORTED_BUDGET_BYTES } from "./fit.ts";
export { TWIN_SCHEMA_PATH, twinJsonSchema, twinJsonSchemaText } from "./json-schema.ts";
export { TWIN_MAX_DEPTH, TWIN_SECTION_LIMIT_BYTES, twinDepth, twinSizeBytes } from "./limits.ts";
export { applyMergePatch, computeMergePatch } from "./merge-patch.ts";
export {
  type ListenerStatus,
  MAX_REPORTED_ERRORS,
  MAX_REPORTED_MAPPING_ERROR,
  type MappingState,
  type ReportedListener,
  type ReportedMapping,
  type ReportedPatch,
  type ReportedProperties,
  type ReportedRelay,
} from "./reported.ts";
export {
  type DesiredPropertiesInput,
  DesiredPropertiesSchema,
  type DrainConfig,
  DrainSchema,
  defaultConfig,
  type HubReconnectConfig,
  HubReconnectSchema,
  isMappingName,
  LOGICAL_PORT_NAME_PATTERN,
  LogicalPortNameSchema,
  logicalPortClashes,
  logicalPortClashMessage,
  logicalPortOf,
  MAPPING_NAME_PATTERN,
  MAX_MAPPINGS,
  type MappingConfig,
  type MappingInput,
  MappingNameSchema,
  MappingSchema,
  parseTarget,
  RESERVED_MAPPING_NAMES,
  type RelayConfig,
  type RelayListenerConfig,
  RelaySchema,
  SCHEMA_VERSION,
  SecretString,
} from "./schema.ts";
export { MAX_ERROR_MESSAGE, type TwinError, type ValidationResult, validateDesired } from "./validate.ts";
