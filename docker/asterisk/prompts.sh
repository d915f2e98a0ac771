#!/bin/sh
# The IVR prompts of ivr_flows/prompts, spoken into the Asterisk image: the same sounds the
# development chroot gets (cti_server/asterisk/local.py, install_prompts), made the same way.
#
#   prompts.sh speak PROMPTS OUT     espeak-ng speaks PROMPTS/<language>/<name>.txt (and
#                                    <language>/digits/<name>.txt) into OUT/<language>/cti/<name>.wav
#                                    (and OUT/<language>/digits/), 8 kHz mono 16-bit for Playback()
#   prompts.sh install OUT SOUNDS    copies them into Asterisk's SOUNDS directory, following its
#                                    language links (Debian's sounds/en is a link to en_US_f_Allison)
set -eu

fail() {
    echo "prompts.sh: $*" >&2
    exit 1
}

# espeak-ng's voice for a language folder (cti_server/asterisk/local.py, VOICES)
voice_of() {
    case "$1" in
        zh) echo cmn ;;
        *) echo "$1" ;;
    esac
}

speak_folder() {  # speak_folder SOURCE TARGET VOICE
    for text_file in "$1"/*.txt; do
        [ -f "$text_file" ] || continue
        mkdir -p "$2"
        name=$(basename "$text_file" .txt)
        espeak-ng -v "$3" -w "$2/$name.raw.wav" -f "$text_file"
        sox -q "$2/$name.raw.wav" -r 8000 -c 1 -b 16 "$2/$name.wav"
        rm "$2/$name.raw.wav"
    done
    return 0
}

speak() {
    [ -d "$1" ] || fail "no prompts folder $1"
    count=0
    for language_dir in "$1"/*/; do
        [ -d "$language_dir" ] || continue
        language=$(basename "$language_dir")
        voice=$(voice_of "$language")
        speak_folder "$language_dir" "$2/$language/cti" "$voice"
        speak_folder "$language_dir/digits" "$2/$language/digits" "$voice"
        count=$((count + 1))
    done
    [ "$count" -gt 0 ] || fail "no language folders in $1"
}

install_sounds() {
    [ -d "$1" ] || fail "no spoken prompts in $1"
    for language_dir in "$1"/*/; do
        language=$(basename "$language_dir")
        for kind in cti digits; do
            [ -d "$language_dir$kind" ] || continue
            mkdir -p "$2/$language/$kind"  # through the language link, never replacing it
            cp "$language_dir$kind"/*.wav "$2/$language/$kind/"
        done
    done
}

case "${1:-}" in
    speak) [ $# -eq 3 ] || fail "usage: prompts.sh speak PROMPTS OUT"; speak "$2" "$3" ;;
    install) [ $# -eq 3 ] || fail "usage: prompts.sh install OUT SOUNDS"; install_sounds "$2" "$3" ;;
    *) fail "usage: prompts.sh speak PROMPTS OUT | prompts.sh install OUT SOUNDS" ;;
esac
