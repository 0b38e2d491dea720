# The variables every Sluice fleet module declares (the driver sets them
# from the fleet record), then the ones of this module.

variable "fleet_id" {
  description = "The fleet's id in the control plane."
  type        = string
}

variable "fleet_name" {
  description = "The fleet's name; runners are named <fleet_name>-<index>."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9-]{0,62}$", var.fleet_name))
    error_message = "The fleet name must be lower-case letters, digits and dashes."
  }
}

variable "control_plane_url" {
  description = "URL the runners reach the control plane at (outbound only)."
  type        = string
}

variable "bootstrap_token" {
  description = "One-time token the runners register with (minted per run, short-lived). Empty when destroying."
  type        = string
  sensitive   = true
  default     = ""
}

variable "runner_version" {
  description = "Runner version: the release downloaded at boot. Changing it makes a new launch template version and an instance refresh."
  type        = string
}

variable "runner_count" {
  description = "How many runners to run."
  type        = number

  validation {
    condition     = var.runner_count >= 0 && var.runner_count <= 1000 && floor(var.runner_count) == var.runner_count
    error_message = "runner_count must be a whole number from 0 to 1000."
  }
}

variable "size" {
  description = "Runner size: small, medium or large; chooses the instance type."
  type        = string
  default     = "small"

  validation {
    condition     = contains(["small", "medium", "large"], var.size)
    error_message = "The size must be small, medium or large."
  }
}

variable "kafka_brokers" {
  description = "Kafka seed brokers (host:port). Required: runners of one fleet must share a cluster."
  type        = list(string)

  validation {
    condition     = length(var.kafka_brokers) > 0
    error_message = "Give the fleet's Kafka brokers (settings.kafka_brokers): runners of one fleet must share a cluster."
  }
}

variable "kafka_tls" {
  description = "Connect to Kafka with TLS."
  type        = bool
  default     = false
}

variable "kafka_sasl_mechanism" {
  description = "SASL mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), or empty for none."
  type        = string
  default     = ""
}

variable "kafka_sasl_user" {
  description = "SASL user."
  type        = string
  default     = ""
}

variable "kafka_sasl_password" {
  description = "SASL password, passed to the runners in their environment."
  type        = string
  sensitive   = true
  default     = ""
}

# This module's own variables.

variable "vpc_id" {
  description = "VPC of the runners' security group."
  type        = string
}

variable "subnet_ids" {
  description = "Subnets of the auto-scaling group (private subnets with a NAT route to the control plane and Kafka)."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) > 0
    error_message = "Give at least one subnet."
  }
}

variable "ami_id" {
  description = "AMI of the runners; empty for the latest Amazon Linux 2023 (x86_64)."
  type        = string
  default     = ""
}

variable "instance_types" {
  description = "Instance type per size."
  type        = map(string)
  default = {
    small  = "t3.medium"
    medium = "m6i.large"
    large  = "m6i.2xlarge"
  }
}

variable "volume_size" {
  description = "Root volume size in GiB (credential, bundle cache, local state)."
  type        = number
  default     = 30
}

variable "runner_download_url" {
  description = "URL of the runner binary; {version} is replaced by runner_version."
  type        = string
  default     = "https://downloads.sluice.dev/runner/{version}/linux-amd64/runner"
}

variable "egress_cidrs" {
  description = "Where the runners may connect to (the control plane, Kafka, DNS, the download URL). The security group has no ingress."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}
