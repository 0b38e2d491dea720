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
  description = "Runner version. Changing it replaces every runner (the local module runs runner_binary whatever the version says)."
  type        = string
  default     = "dev"
}

variable "runner_count" {
  description = "How many runners to run."
  type        = number

  validation {
    condition     = var.runner_count >= 0 && var.runner_count <= 64 && floor(var.runner_count) == var.runner_count
    error_message = "The local module runs from 0 to 64 runners on this host."
  }
}

variable "size" {
  description = "Runner size: small, medium or large. The local module only checks it; processes are not limited."
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

variable "runner_binary" {
  description = "Absolute path of the runner binary to start."
  type        = string

  validation {
    condition     = startswith(var.runner_binary, "/")
    error_message = "runner_binary must be an absolute path."
  }
}

variable "fleet_dir" {
  description = "Absolute directory of the fleet's runners: one subdirectory each with its pid file, log and data directory."
  type        = string

  validation {
    condition     = startswith(var.fleet_dir, "/")
    error_message = "fleet_dir must be an absolute path."
  }
}

variable "ops_listen" {
  description = "Address of each runner's ops server (/metrics, /healthz); port 0 picks a free port per runner."
  type        = string
  default     = "127.0.0.1:0"
}

variable "extra_args" {
  description = "Further `runner agent` flags, e.g. [\"--log-level\", \"debug\"]."
  type        = list(string)
  default     = []
}
