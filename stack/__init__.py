"""The whole local stack in one command: ``python -m stack`` (what ``make demo`` runs).

``config`` describes the stack (stack.toml: every service's port, command, health check and scrape job),
``render`` turns that description into files and text (Prometheus' config, docker-compose.yml, the
ready banner) as plain functions, and ``runner`` starts, watches and stops the processes with honcho.
"""
