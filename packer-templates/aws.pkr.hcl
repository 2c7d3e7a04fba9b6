# The real-AWS source, for Packer >= 1.7 only (see app.pkr.hcl): `release` runs `packer init` on this folder
# first, and builds the folder, so this file shares app.pkr.hcl's variables and locals.

packer {
  required_plugins {
    amazon = {
      version = ">= 1.2.0"
      source  = "github.com/hashicorp/amazon"
    }
  }
}

source "amazon-ebs" "aws" {
  region          = var.region
  source_ami      = var.base_ami
  instance_type   = var.instance_type
  ami_name        = var.ami_name
  communicator    = "ssh"
  ssh_username    = var.ssh_username
  subnet_id       = var.subnet_id
  tags            = merge(local.tags, var.release_tags)
  snapshot_tags   = merge(local.tags, var.release_tags)
  run_tags        = local.run_tags
  run_volume_tags = local.run_tags

  # The builder instance obeys the same rules as the fleet: IMDSv2 only, and the AMI asks for it too.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
  }
  imds_support = "v2.0"

  # Encrypted snapshots, with the account's default key unless one is named. kms_key_id is the key of this
  # region only; each copy's is in region_kms_key_ids ([bake] kms_keys), or it gets its region's default key,
  # which cannot be shared with ami_users.
  encrypt_boot       = var.encrypt_boot
  kms_key_id         = var.kms_key_id
  region_kms_key_ids = var.region_kms_key_ids

  # The temporary SSH rule admits only the machine running Packer (or the CIDRs given), never 0.0.0.0/0.
  temporary_security_group_source_cidrs     = var.ssh_cidrs
  temporary_security_group_source_public_ip = length(var.ssh_cidrs) == 0

  # Copies to other regions, shared with other accounts; the copies carry the release tags so that
  # `release images` and `promote` find them by tag where they run.
  ami_regions    = var.ami_regions
  ami_users      = var.ami_users
  snapshot_users = var.ami_users
}

build {
  sources = ["source.amazon-ebs.aws"]

  provisioner "file" {
    only        = ["amazon-ebs.aws"]
    source      = var.artifact
    destination = "/tmp/${var.app}.tar.gz"
  }

  provisioner "shell" {
    only = ["amazon-ebs.aws"]
    inline = [
      "set -eu",
      "id -u ${var.app} >/dev/null 2>&1 || sudo useradd --system --no-create-home --home-dir ${local.app_dir} --shell /sbin/nologin ${var.app}",
      "sudo mkdir -p ${local.app_dir} /etc/${var.app}",
      "sudo tar -xzf /tmp/${var.app}.tar.gz --no-same-owner -C ${local.app_dir}",
      "rm -f /tmp/${var.app}.tar.gz",
      "echo '${var.commit}' | sudo tee ${local.app_dir}/COMMIT >/dev/null",
      "printf '%s\\n' '[Unit]' 'Description=${var.app} (${var.commit})' 'After=network-online.target' 'Wants=network-online.target' 'ConditionPathExists=${local.env_file}' '' '[Service]' 'User=${var.app}' 'AmbientCapabilities=CAP_NET_BIND_SERVICE' 'EnvironmentFile=${local.env_file}' 'WorkingDirectory=${local.app_dir}' 'ExecStart=${local.exec_start}' 'Restart=always' 'RestartSec=2' '' '[Install]' 'WantedBy=multi-user.target' | sudo tee /etc/systemd/system/${var.app}.service >/dev/null",
      "sudo systemctl daemon-reload",
      "sudo systemctl enable ${var.app}.service",
    ]
  }
}
