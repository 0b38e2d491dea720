output "runner_count" {
  description = "How many runners the StatefulSet runs."
  value       = var.runner_count
}

output "runner_names" {
  description = "The runners' names (pod names), as the control plane lists them."
  value       = [for i in range(var.runner_count) : "${local.name}-${i}"]
}

output "namespace" {
  description = "Namespace of the fleet."
  value       = var.namespace
}

output "statefulset_name" {
  description = "Name of the runners' StatefulSet."
  value       = kubernetes_stateful_set_v1.runner.metadata[0].name
}

output "service_account_name" {
  description = "Name of the runners' ServiceAccount."
  value       = kubernetes_service_account_v1.runner.metadata[0].name
}
