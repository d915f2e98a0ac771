#!/bin/sh
# Assemble /etc/asterisk from Debian's stock files and the files `cti dialplan render` wrote into
# $ASTERISK_RENDERED_DIR (a volume the compose `dialplan` service fills), then run Asterisk in the
# foreground as the asterisk user. Arguments are passed on to asterisk (e.g. -vvv).
set -eu

RENDERED=${ASTERISK_RENDERED_DIR:-/etc/asterisk-rendered}
STOCK=/usr/share/asterisk/etc-debian
ETC=/etc/asterisk

# Rendered from the CTI settings. The renderer also writes asterisk.conf, but its directories are
# guessed in the cti image; Debian's own asterisk.conf fits this image, so it is kept instead.
RENDERED_FILES="modules.conf logger.conf manager.conf extensions.conf queues.conf pjsip.conf
musiconhold.conf rtp.conf"
# Debian's stock files kept as they are: the same list as STOCK_CONFIG in
# cti_server/asterisk/local.py, plus asterisk.conf. Every other stock file is left out, so that
# modules find only the configuration the development chroot also has.
STOCK_FILES="asterisk.conf cdr.conf features.conf indications.conf ccss.conf acl.conf udptl.conf
codecs.conf pjproject.conf cel.conf"

fail() {
    echo "asterisk-entrypoint: $*" >&2
    exit 1
}

for name in $RENDERED_FILES; do
    if [ ! -s "$RENDERED/$name" ]; then
        fail "$RENDERED/$name is missing: run \`cti dialplan render --out $RENDERED\` first" \
            "(docker compose run --rm dialplan)"
    fi
done

find "$ETC" -mindepth 1 -delete
for name in $STOCK_FILES; do
    if [ -f "$STOCK/$name" ]; then
        cp "$STOCK/$name" "$ETC/$name"
    fi
done
for name in $RENDERED_FILES; do
    cp "$RENDERED/$name" "$ETC/$name"
done

# rtp.conf comes rendered with a fixed 10000-20000 range. Docker cannot sensibly publish ten
# thousand ports, so the range that docker-compose.yml publishes is set here; both must agree.
if [ -n "${ASTERISK_RTP_START:-}${ASTERISK_RTP_END:-}" ]; then
    start=${ASTERISK_RTP_START:-}
    end=${ASTERISK_RTP_END:-}
    for port in "$start" "$end"; do
        case "$port" in
            "" | *[!0-9]*) fail "ASTERISK_RTP_START and ASTERISK_RTP_END must both be port numbers" ;;
        esac
    done
    if [ "$start" -lt 1024 ] || [ "$end" -gt 65535 ] || [ "$start" -ge "$end" ]; then
        fail "RTP range $start-$end: need 1024 <= ASTERISK_RTP_START < ASTERISK_RTP_END <= 65535"
    fi
    sed -i -e "s/^rtpstart[[:space:]]*=.*/rtpstart = $start/" \
        -e "s/^rtpend[[:space:]]*=.*/rtpend = $end/" "$ETC/rtp.conf"
fi

# manager.conf holds the AMI secret: readable by the asterisk group only.
chown -R root:asterisk "$ETC"
chmod 0750 "$ETC"
find "$ETC" -type f -exec chmod 0640 {} +

for dir in /run/asterisk /var/lib/asterisk /var/spool/asterisk /var/log/asterisk \
    /var/cache/asterisk; do
    mkdir -p "$dir"
    chown asterisk:asterisk "$dir"
done

# Calls are recorded (MixMonitor, the dialplan's cti-record) into the monitor directory, a volume
# that the cti container reads as another user (post-call transcription, complaint playback):
# the directory and the files are readable by whoever mounts the volume.
install -d -o asterisk -g asterisk -m 0755 /var/spool/asterisk/monitor
umask 022

exec asterisk -f -n -U asterisk -G asterisk "$@"
