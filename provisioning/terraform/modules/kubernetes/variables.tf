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
  description = "Runner version: the image tag. Changing it rolls the StatefulSet."
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
  description = "Runner size: small, medium or large; sets CPU and memory requests and limits."
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

variable "namespace" {
  description = "Namespace to run the fleet in (must exist)."
  type        = string
  default     = "sluice"
}

variable "image" {
  description = "Runner image repository; the tag is runner_version."
  type        = string
  default     = "ghcr.io/sluicehq/runner"
}

variable "storage_size" {
  description = "Size of each runner's volume for its credential, cache and local state."
  type        = string
  default     = "10Gi"
}

variable "storage_class" {
  description = "Storage class of the runners' volumes; null for the cluster's default."
  type        = string
  default     = null
}

variable "egress_cidrs" {
  description = "Where the runners may connect to (the control plane, Kafka, DNS). Nothing may connect to them."
  type        = list(string)
  default     = ["0.0.0.0/0", "::/0"]
}
