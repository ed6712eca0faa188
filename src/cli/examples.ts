/**
 * The "Examples:" that end every command's --help. Kept in one table rather
 * than beside each command so that they read as a set, and so one test
 * (cli-examples.test.ts) can parse every line with the real parser: an
 * example with a flag the command lacks fails the build, not a user.
 */
import type { Command } from "commander";
import { commandPath } from "./usage.js";

/** Command path (without `skiff`) → what a user would type, two or three each. */
export const examples: Record<string, string[]> = {
  run: ["skiff run --rm -it alpine sh", "skiff run -d --name web -p 8080:80 -m 512m nginx", "skiff run --network none --cpus 2 debian uname -a"],
  exec: ["skiff exec web cat /etc/os-release", "skiff exec -it web sh", "skiff exec -u nobody -w /tmp -e DEBUG=1 web env"],
  create: ["skiff create --name db -m 1g postgres:16", "skiff create --name scratch --network none alpine"],
  start: ["skiff start web", "skiff start web db", "skiff start --cold sandbox"],
  stop: ["skiff stop web", "skiff stop -t 30 web db", "skiff stop --hibernate sandbox"],
  pause: ["skiff pause web", "skiff pause web db"],
  unpause: ["skiff unpause web", "skiff unpause web db"],
  restart: ["skiff restart web", "skiff restart -t 5 web"],
  kill: ["skiff kill web", "skiff kill -s SIGTERM web"],
  rm: ["skiff rm web", "skiff rm -f web db"],
  ps: ["skiff ps", "skiff ps -a", "skiff ps -aq"],
  inspect: ["skiff inspect web", "skiff inspect web db"],
  cp: ["skiff cp ./site web:/srv/www", "skiff cp web:/var/log/app.log .", "skiff cp -a web:/etc ./etc-backup"],
  ssh: ["skiff ssh web", "skiff ssh web uptime"],
  "ssh-config": ["skiff ssh-config web >> ~/.ssh/config", "skiff ssh-config"],
  proxy: ["skiff proxy web", "skiff ssh-config web >> ~/.ssh/config   # writes ProxyCommand ... proxy web"],
  top: ["skiff top web"],
  logs: ["skiff logs web", "skiff logs -f -n 50 web", "skiff logs --provision web"],
  console: ["skiff console web"],
  image: ["skiff image ls", "skiff image pull alpine:3.20", "skiff image prune -a"],
  "image pull": ["skiff image pull alpine:3.20", "skiff image pull --platform linux/arm64 debian:bookworm", "skiff image pull https://cloud.debian.org/images/cloud/bookworm/latest/debian-12-generic-amd64.qcow2"],
  "image import": ["docker save myapp:1.0 -o myapp.tar && skiff image import --name myapp:1.0 myapp.tar", "skiff image import --name rootfs ./rootfs.tar.gz"],
  "image ls": ["skiff image ls", "skiff image ls --json"],
  "image inspect": ["skiff image inspect alpine", "skiff image inspect 3f5c2a91"],
  "image rm": ["skiff image rm alpine", "skiff image rm alpine debian:bookworm"],
  "image prune": ["skiff image prune", "skiff image prune -a"],
  "image bootstrap": ["skiff image bootstrap", "skiff image bootstrap --suite trixie --name debian-trixie", "skiff image bootstrap --include curl,ca-certificates"],
  login: ["skiff login -u alice ghcr.io", "echo \"$TOKEN\" | skiff login -u alice --password-stdin registry.example.com"],
  logout: ["skiff logout ghcr.io"],
  serve: ["skiff serve --listen 127.0.0.1:7070", "skiff serve --listen 0.0.0.0:7443 --tls-cert cert.pem --tls-key key.pem", "skiff serve --print-token"],
  system: ["skiff system df"],
  "system df": ["skiff system df", "skiff system df --json"],
  layer: ["skiff layer ls", "skiff layer build --from debian redis"],
  "layer ls": ["skiff layer ls", "skiff layer ls --path ./layers"],
  "layer build": ["skiff layer build --from debian redis", "skiff layer build --path ./layers --from debian base myapp", "skiff layer build --force --from debian postgres"],
  network: ["skiff network create backend", "skiff network ls", "skiff run --network backend -d --name api alpine sleep infinity"],
  "network create": ["skiff network create backend", "skiff network create --subnet 10.90.0.0/24 --gateway 10.90.0.1 backend", "skiff network create --driver bridge --masquerade lan"],
  "network ls": ["skiff network ls", "skiff network ls -q"],
  "network inspect": ["skiff network inspect backend"],
  "network rm": ["skiff network rm backend", "skiff network rm backend lan"],
  "network up": ["skiff network up", "skiff network up lan"],
  "network down": ["skiff network down", "skiff network down lan"],
  "network tcpdump": ["skiff network tcpdump backend", "skiff network tcpdump -c 10 backend icmp", "skiff network tcpdump -w backend.pcap backend host 10.90.0.2 and tcp port 80"],
  port: ["skiff port web"],
  "port-forward": ["skiff port-forward web 8080:80", "skiff port-forward --remove web 8080:80"],
  kernel: ["skiff kernel build --use", "skiff run --rm --kernel skiff -m 64 base uname -r", "skiff kernel ls"],
  "kernel build": ["skiff kernel build", "skiff kernel build --use", "skiff kernel build --jobs 4 --source /usr/src/linux-source-6.1.tar.xz"],
  "kernel ls": ["skiff kernel ls", "skiff kernel ls -q"],
  "kernel use": ["skiff kernel use skiff", "skiff kernel use debian"],
  "kernel rm": ["skiff kernel rm 3f2a9c"],
  volume: ["skiff volume create data", "skiff run -v data:/var/lib/data -d alpine sleep infinity", "skiff volume ls"],
  "volume create": ["skiff volume create data", "skiff volume create --size 10g --label app=db pgdata"],
  "volume ls": ["skiff volume ls", "skiff volume ls -q"],
  "volume inspect": ["skiff volume inspect data"],
  "volume rm": ["skiff volume rm data", "skiff volume rm -f data"],
  "volume prune": ["skiff volume prune"],
  snapshot: ["skiff snapshot create --name warm web", "skiff snapshot ls", "skiff restore warm --name web2"],
  "snapshot create": ["skiff snapshot create web", "skiff snapshot create --name warm web"],
  "snapshot ls": ["skiff snapshot ls", "skiff snapshot ls web", "skiff snapshot ls -q"],
  "snapshot inspect": ["skiff snapshot inspect warm"],
  "snapshot rm": ["skiff snapshot rm warm", "skiff snapshot rm -f warm"],
  "snapshot gc": ["skiff snapshot gc --keep 3 web"],
  "snapshot prune": ["skiff snapshot prune", "skiff snapshot prune -a"],
  restore: ["skiff restore warm", "skiff restore --name web2 warm"],
  fork: ["skiff fork web", "skiff fork -n 4 --name worker web"],
  up: ["skiff up -d", "skiff up -d --wait web", "skiff up -f staging.yml -p staging -d"],
  down: ["skiff down", "skiff down -v"],
  build: ["skiff build", "skiff build --no-cache web"],
  provision: ["skiff provision", "skiff provision web"],
  reload: ["skiff reload web", "skiff reload"],
  config: ["skiff config", "skiff config --format json", "skiff config schema > skiff.schema.json"],
  compose: ["skiff compose up -d", "skiff compose -f docker-compose.yml ps", "skiff compose logs -f web"],
  "compose up": ["skiff compose up -d", "skiff compose up -d --wait web"],
  "compose down": ["skiff compose down", "skiff compose down -v"],
  "compose build": ["skiff compose build", "skiff compose build --no-cache web"],
  "compose provision": ["skiff compose provision web"],
  "compose reload": ["skiff compose reload web"],
  "compose config": ["skiff compose config", "skiff compose config --format json"],
  "compose ps": ["skiff compose ps", "skiff compose ps -a"],
  "compose logs": ["skiff compose logs", "skiff compose logs -f -n 20 web"],
  "compose exec": ["skiff compose exec web sh", "skiff compose exec --index 2 -u postgres db psql"],
  "compose stop": ["skiff compose stop", "skiff compose stop web"],
  "compose start": ["skiff compose start", "skiff compose start web"],
  "compose restart": ["skiff compose restart web"],
  "compose pause": ["skiff compose pause", "skiff compose pause web"],
  "compose unpause": ["skiff compose unpause", "skiff compose unpause web"],
  "compose kill": ["skiff compose kill web", "skiff compose kill -s SIGTERM web"],
  "compose top": ["skiff compose top", "skiff compose top web"],
  autostart: ["skiff autostart enable web", "skiff autostart enable --project", "skiff autostart ls"],
  "autostart enable": ["skiff autostart enable web db", "skiff autostart enable --project -f skiff.yml"],
  "autostart disable": ["skiff autostart disable web", "skiff autostart disable --project"],
  "autostart ls": ["skiff autostart ls"],
  doctor: ["skiff doctor", "skiff doctor --json"],
  version: ["skiff version", "skiff version --json"],
  mcp: ["skiff mcp", "skiff mcp --policy agent-policy.yml", "skiff mcp -f pontoon.yml"],
  settings: ["skiff settings init", "skiff settings show"],
  "settings show": ["skiff settings show", "skiff settings show --json"],
  "settings init": ["skiff settings init", "skiff settings init --force"],
  completion: ["source <(skiff completion bash)", "skiff completion zsh > \"${fpath[1]}/_skiff\"", "skiff completion fish > ~/.config/fish/completions/skiff.fish"],
};

/** End each command's help with its examples (every command, subcommands included). */
export function addExamples(program: Command): void {
  const walk = (cmd: Command): void => {
    for (const sub of cmd.commands) {
      const lines = examples[commandPath(sub).replace(/^\S+ /, "")];
      if (lines !== undefined) sub.addHelpText("after", `\nExamples:\n${lines.map((l) => `  $ ${l}`).join("\n")}`);
      walk(sub);
    }
  };
  walk(program);
}
