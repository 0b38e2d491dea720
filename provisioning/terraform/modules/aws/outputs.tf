output "runner_count" {
  description = "How many runners the auto-scaling group runs."
  value       = aws_autoscaling_group.runner.desired_capacity
}

output "autoscaling_group_name" {
  description = "Name of the runners' auto-scaling group."
  value       = aws_autoscaling_group.runner.name
}

output "launch_template_id" {
  description = "Id of the runners' launch template."
  value       = aws_launch_template.runner.id
}

output "security_group_id" {
  description = "Id of the runners' security group (no ingress)."
  value       = aws_security_group.runner.id
}

output "iam_role_arn" {
  description = "ARN of the runners' instance role."
  value       = aws_iam_role.runner.arn
}
