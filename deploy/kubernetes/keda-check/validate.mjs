// Validates KEDA ScaledObjects against the schema of KEDA's Go types (the npm package
// @kubernetes-models/keda, generated from github.com/kedacore/keda/v2/apis/keda/v1alpha1): types,
// required fields, enums. It does not refuse unknown fields (the test checks those keys itself).
// Input: a JSON array of objects on stdin. Output: one line per object; exit status 1 if any is invalid.
import { readFileSync } from "node:fs";
import { ScaledObject } from "@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject";

const objects = JSON.parse(readFileSync(0, "utf8"));
let invalid = 0;
for (const object of objects) {
  const name = `${object.kind} ${object.metadata?.name}`;
  try {
    new ScaledObject(object).validate();
    console.log(`valid: ${name}`);
  } catch (error) {
    invalid += 1;
    console.log(`invalid: ${name}: ${error.message}`);
  }
}
process.exit(invalid ? 1 : 0);
