output "runner_count" {
  description = "How many runners the fleet has."
  value       = length(terraform_data.runner)
}

output "runner_names" {
  description = "The runners' names, as the control plane lists them."
  value       = [for r in terraform_data.runner : r.input.name]
}

output "pid_files" {
  description = "Each runner's pid file."
  value       = [for r in terraform_data.runner : r.input.pid_file]
}

output "log_files" {
  description = "Each runner's log."
  value       = [for r in terraform_data.runner : r.input.log_file]
}
