# N `runner agent` processes on this host, one terraform_data each. The
# create-time provisioner starts a runner in the background (its own
# session, so it outlives terraform) and writes its pid file; the
# destroy-time one stops it. With count, scaling from N to M adds or removes
# exactly runners M..N-1.

locals {
  names = [for i in range(var.runner_count) : format("%s-%d", var.fleet_name, i)]
}

resource "terraform_data" "runner" {
  count = var.runner_count

  # What the destroy-time provisioner needs: it may only read self.
  input = {
    name     = local.names[count.index]
    dir      = "${var.fleet_dir}/${local.names[count.index]}"
    pid_file = "${var.fleet_dir}/${local.names[count.index]}/runner.pid"
    log_file = "${var.fleet_dir}/${local.names[count.index]}/runner.log"
  }

  # A change to any of these restarts the runner. The bootstrap token is
  # not here: a new token per run must not replace runners that already
  # registered.
  triggers_replace = {
    runner_version    = var.runner_version
    runner_binary     = var.runner_binary
    control_plane_url = var.control_plane_url
    kafka_brokers     = join(",", var.kafka_brokers)
    kafka_tls         = var.kafka_tls
    kafka_sasl        = "${var.kafka_sasl_mechanism}:${var.kafka_sasl_user}"
    ops_listen        = var.ops_listen
    extra_args        = join("\u001f", var.extra_args)
  }

  provisioner "local-exec" {
    command     = "${path.module}/scripts/start.sh"
    interpreter = ["/bin/sh"]
    # Secrets go through the environment, never a command line. local-exec
    # does not print its environment; nonsensitive keeps the script's own
    # error messages (a dead runner's log) visible in the run's log.
    environment = {
      SLUICE_BOOTSTRAP_TOKEN = nonsensitive(var.bootstrap_token)
      SLUICE_SASL_PASSWORD   = nonsensitive(var.kafka_sasl_password)
      RUNNER_BINARY          = var.runner_binary
      RUNNER_NAME            = self.input.name
      RUNNER_DIR             = self.input.dir
      PID_FILE               = self.input.pid_file
      LOG_FILE               = self.input.log_file
      CONTROL_PLANE_URL      = var.control_plane_url
      KAFKA_BROKERS          = join(",", var.kafka_brokers)
      KAFKA_TLS              = var.kafka_tls ? "1" : ""
      KAFKA_SASL_MECHANISM   = var.kafka_sasl_mechanism
      KAFKA_SASL_USER        = var.kafka_sasl_user
      OPS_LISTEN             = var.ops_listen
      EXTRA_ARGS             = join("\u001f", var.extra_args)
    }
  }

  provisioner "local-exec" {
    when        = destroy
    command     = "${path.module}/scripts/stop.sh"
    interpreter = ["/bin/sh"]
    environment = {
      RUNNER_DIR = self.input.dir
      PID_FILE   = self.input.pid_file
    }
  }
}
