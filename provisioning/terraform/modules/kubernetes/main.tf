# A runner fleet in the customer's Kubernetes cluster: a StatefulSet (so
# each runner keeps its volume, with its credential, across restarts), a
# Secret with the bootstrap token, a ServiceAccount without API access and
# a NetworkPolicy that lets the runners connect out and nothing connect in.
# The provider is configured by the caller (kubeconfig or in-cluster).

locals {
  name = "sluice-runner-${var.fleet_name}"
  labels = {
    "app.kubernetes.io/name"       = "sluice-runner"
    "app.kubernetes.io/instance"   = var.fleet_name
    "app.kubernetes.io/managed-by" = "sluice"
    "sluice.dev/fleet-id"          = var.fleet_id
  }
  sizes = {
    small  = { cpu = "250m", memory = "512Mi", cpu_limit = "1", memory_limit = "1Gi" }
    medium = { cpu = "1", memory = "2Gi", cpu_limit = "2", memory_limit = "4Gi" }
    large  = { cpu = "2", memory = "4Gi", cpu_limit = "4", memory_limit = "8Gi" }
  }
  size = local.sizes[var.size]
  kafka_args = concat(
    ["--brokers", join(",", var.kafka_brokers)],
    var.kafka_tls ? ["--tls"] : [],
    var.kafka_sasl_mechanism != "" ? ["--sasl-mechanism", var.kafka_sasl_mechanism, "--sasl-user", var.kafka_sasl_user] : [],
  )
}

resource "kubernetes_service_account_v1" "runner" {
  metadata {
    name      = local.name
    namespace = var.namespace
    labels    = local.labels
  }
  # Runners never call the Kubernetes API.
  automount_service_account_token = false
}

resource "kubernetes_secret_v1" "runner" {
  metadata {
    name      = local.name
    namespace = var.namespace
    labels    = local.labels
  }
  type = "Opaque"
  data = {
    bootstrap-token = var.bootstrap_token
    sasl-password   = var.kafka_sasl_password
  }
}

resource "kubernetes_stateful_set_v1" "runner" {
  metadata {
    name      = local.name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    replicas              = var.runner_count
    service_name          = local.name
    pod_management_policy = "Parallel"

    selector {
      match_labels = local.labels
    }

    template {
      metadata {
        labels = local.labels
      }

      spec {
        service_account_name             = kubernetes_service_account_v1.runner.metadata[0].name
        automount_service_account_token  = false
        termination_grace_period_seconds = 45

        security_context {
          run_as_non_root = true
          run_as_user     = 65532
          run_as_group    = 65532
          fs_group        = 65532
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        container {
          name  = "runner"
          image = "${var.image}:${var.runner_version}"
          args = concat(
            ["agent", "--control-plane", var.control_plane_url, "--data-dir", "/var/lib/sluice", "--name", "$(POD_NAME)", "--listen", ":9464"],
            local.kafka_args,
          )

          env {
            name = "POD_NAME"
            value_from {
              field_ref {
                field_path = "metadata.name"
              }
            }
          }

          env {
            name = "SLUICE_BOOTSTRAP_TOKEN"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.runner.metadata[0].name
                key  = "bootstrap-token"
              }
            }
          }

          env {
            name = "SLUICE_SASL_PASSWORD"
            value_from {
              secret_key_ref {
                name = kubernetes_secret_v1.runner.metadata[0].name
                key  = "sasl-password"
              }
            }
          }

          port {
            name           = "ops"
            container_port = 9464
          }

          resources {
            requests = {
              cpu    = local.size.cpu
              memory = local.size.memory
            }
            limits = {
              cpu    = local.size.cpu_limit
              memory = local.size.memory_limit
            }
          }

          liveness_probe {
            http_get {
              path = "/healthz"
              port = "ops"
            }
            period_seconds = 10
          }

          readiness_probe {
            http_get {
              path = "/readyz"
              port = "ops"
            }
            period_seconds = 5
          }

          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            capabilities {
              drop = ["ALL"]
            }
          }

          volume_mount {
            name       = "data"
            mount_path = "/var/lib/sluice"
          }
        }
      }
    }

    volume_claim_template {
      metadata {
        name   = "data"
        labels = local.labels
      }
      spec {
        access_modes       = ["ReadWriteOnce"]
        storage_class_name = var.storage_class
        resources {
          requests = {
            storage = var.storage_size
          }
        }
      }
    }
  }
}

# Outbound only: no ingress rule (so all ingress is denied), egress to
# egress_cidrs on any port (the control plane, Kafka and DNS).
resource "kubernetes_network_policy_v1" "runner" {
  metadata {
    name      = local.name
    namespace = var.namespace
    labels    = local.labels
  }

  spec {
    pod_selector {
      match_labels = local.labels
    }
    policy_types = ["Ingress", "Egress"]

    egress {
      dynamic "to" {
        for_each = var.egress_cidrs
        content {
          ip_block {
            cidr = to.value
          }
        }
      }
    }
  }
}
