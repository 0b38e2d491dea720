// Package terraform provisions runner fleets with Terraform (DESIGN.md §5,
// Provisioning): the HCL modules per target (local, kubernetes, aws,
// embedded in modules/), the driver that runs terraform-exec in one working
// directory per fleet, and the Reconciler that takes the fleet runs the API
// records in PostgreSQL through init, plan, review and apply, one run at a
// time per fleet.
//
// A run is an ordered list of sub-steps with one deferred block that records
// its outcome; what fails says what to do next through *Error: retry, or a
// human must act.
package terraform
