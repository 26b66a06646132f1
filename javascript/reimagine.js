// sd-webui-reimagine: Generate with live progress in the Reimagine tab (the WebUI's own txt2img pattern).

function submit_reimagine() {
    showSubmitButtons('reimagine', false);

    var id = randomId();
    localSet("reimagine_task_id", id);

    requestProgress(id, gradioApp().getElementById('reimagine_gallery_container'), gradioApp().getElementById('reimagine_gallery'), function() {
        showSubmitButtons('reimagine', true);
        localRemove("reimagine_task_id");
        showRestoreProgressButton('reimagine', false);
    });

    var res = create_submit_args(arguments);
    res[0] = id;
    return res;
}

// "Send to Reimagine" buttons (the WebUI's switch_to_<tabname> convention): show the Reimagine tab.
function switch_to_reimagine() {
    var tabs = gradioApp().querySelector('#tabs');
    var items = Array.from(tabs.querySelectorAll(':scope > .tabitem'));
    var buttons = Array.from(tabs.querySelectorAll(':scope > .tab-nav > button'));
    var index = items.indexOf(gradioApp().getElementById('tab_reimagine'));
    var button = buttons[index] || buttons.find(function(b) {
        return b.textContent.trim() === 'Reimagine';
    });
    if (button) {
        button.click();
    }
    return Array.from(arguments);
}
